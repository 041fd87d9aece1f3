package detectbench

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"testing"
)

// apiTrafficPath is the large benign corpus: requests as the clients of
// many public API styles send them (SDK user agents, JSON escaping
// styles, form and multipart encodings, query DSLs, markdown and code in
// text fields, GraphQL, base64, unicode). HeldBack(id) keeps 30 % of it
// out of tuning, like the CRS set.
const apiTrafficPath = "testdata/benign-api.jsonl"

// apiPerStyle is the number of requests per API style.
const apiPerStyle = 420

var (
	sdkUA = []string{
		"Stripe/v1 GoBindings/76.25.0", "stripe-python/9.6.0", "octokit-rest.js/20.1.1", "PyGithub/Python", "Slackbot 1.0 (+https://api.slack.com/robots)",
		"elasticsearch-py/8.13.0 (Python/3.12.3; elastic-transport/8.13.0)", "Apollo-iOS/1.9.0", "apollo-android/3.8.3", "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2",
		"Twilio/8.13.0 (Node.js v20.12.2)", "OpenAI/Python 1.25.0", "google-api-go-client/0.5", "Dart/3.3 (dart:io)", "Faraday v2.9.0", "Apache-HttpClient/4.5.14 (Java/17.0.10)",
		"PostmanRuntime/7.37.3", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "Ruby", "okhttp/4.12.0", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
	}
	issueTitles = []string{
		"Crash when the config file is empty", "Support for OR filters in the search endpoint", "select() returns stale rows after UPDATE",
		"Docs: how to drop a table safely in migrations?", "`rm -rf` in the cleanup script deletes too much", "Add --dry-run flag to the CLI",
		"Login fails if the password contains a single quote (')", "Memory leak in union_find.go", "Unicode names (Zoë, Søren) break CSV export",
		"Timeout on /api/v1/orders?limit=500", "Feature: allow <br> tags in comments", "Error: Cannot read properties of undefined (reading 'map')",
		"SELECT * FROM users WHERE id = ? is slow on Postgres 16", "Windows path C:\\Program Files\\App is not quoted", "Allow `$filter` param like OData",
	}
	codeSnippets = []string{
		"```go\nfunc main() {\n\tfmt.Println(\"hello\")\n}\n```",
		"```python\nimport os\nprint(os.environ.get('HOME'))\n```",
		"```sql\nSELECT id, name FROM users WHERE created_at > now() - interval '1 day' ORDER BY id;\n```",
		"```bash\ncurl -s https://api.example.com/v1/health | jq .status\n```",
		"```js\nconst items = data.filter(x => x.price > 10 && x.stock !== 0);\n```",
		"Try `git log --oneline | head -5` and paste the output.",
		"```yaml\nservices:\n  web:\n    image: nginx:1.25\n    ports: [\"8080:80\"]\n```",
		"In Java: `List<String> names = new ArrayList<>();`",
		"```rust\nfn main() { let v: Vec<i32> = (1..10).collect(); }\n```",
		"Run `npm install --save-dev eslint` then `npx eslint .`",
		"```html\n<div class=\"card\"><h2>Title</h2><p>Body text</p></div>\n```",
		"```c\nint main(void) { return 0; }\n```",
	}
	chatPrompts = []string{
		"Summarize this article in three bullet points.", "Write a haiku about the ocean at night.",
		"Explain the difference between a process and a thread, with an example.", "Translate 'Where is the train station?' into German and French.",
		"What does `SELECT COUNT(*) FROM orders GROUP BY status` return?", "Fix this code: for i in range(10) print(i)",
		"Give me a regex that matches an e-mail address.", "How do I undo the last git commit but keep the changes?",
		"Is it safe to run `chmod 777` on my web root? Why not?", "Draft a polite reply declining the meeting on Friday.",
		"What's the capital of Australia, and why isn't it Sydney?", "Convert 72°F to Celsius and show the formula.",
		"List five books like 'The Name of the Wind'.", "Explain what the <script> tag does in HTML to a beginner.",
	}
	searchQueries = []string{
		"red running shoes size 42", "\"exact phrase\" -excluded", "laptop under $1000", "café near me open now", "how to reset password",
		"c# async await tutorial", "node.js vs deno", "best pizza in new york", "1/2 inch drill bit", "price:[10 TO 100]",
		"title:(quick OR brown) AND status:active", "author:\"O'Reilly\"", "tags:c++ -tags:java", "50% off", "wireless mouse & keyboard",
		"São Paulo hotels", "東京 ラーメン", "what is 2+2", "iphone 15 pro max case", "select all that apply",
	}
	slackTexts = []string{
		"Deploy finished :rocket: <https://ci.example.com/build/123|build #123>", "<@U024BE7LH> can you review the PR?", "Standup in 5 :coffee:",
		"FYI the DB migration is running, expect ~2 min of read-only", "*bold* _italic_ ~strike~ `code`", "Who broke main? :thinking_face:",
		"Reminder: on-call handover at 17:00 UTC", "Thanks all! :tada: Release 2.4.0 is out", "Use `kubectl get pods -n prod` to check",
		"Lunch? 🍕 or 🍣", "The error was `ECONNREFUSED 10.0.3.7:5432`, fixed now", "<!here> office closed on Monday",
	}
	htmlBodies = []string{
		"<p>Welcome to our <strong>spring</strong> collection.</p><p><a href=\"/shop\">Shop now</a></p>",
		"<h2>Release notes</h2><ul><li>Faster search</li><li>Dark mode</li></ul>",
		"<p>Contact us at <a href=\"mailto:hello@example.com\">hello@example.com</a>.</p>",
		"<figure><img src=\"https://cdn.example.io/img/hero.jpg\" alt=\"Hero image\" width=\"1200\"><figcaption>Our team</figcaption></figure>",
		"<blockquote>Simplicity is prerequisite for reliability.</blockquote><p>— Dijkstra</p>",
		"<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Pro</td><td>$12/mo</td></tr></table>",
		"<p>Line one<br>Line two</p><hr><p><em>Updated</em> 2024-05-01</p>",
	}
)

func apiHeaders(rng *rand.Rand, host string) [][2]string {
	h := [][2]string{{"Host", host}, {"User-Agent", pick(rng, sdkUA)}, {"Accept", pick(rng, []string{"application/json", "*/*", "application/vnd.github+json", "application/json, text/plain, */*"})}}
	if rng.IntN(2) == 0 {
		h = append(h, [2]string{"Accept-Encoding", pick(rng, []string{"gzip, deflate, br", "gzip", "identity"})})
	}
	return withAuth(rng, h)
}

func apiJSON(rng *rand.Rand, host, method, path string, doc any) Entry {
	body := mustJSON(doc)
	if rng.IntN(3) == 0 {
		// Some clients escape every non-ASCII rune and '/' (Python's json.dumps, PHP).
		body = asciiEscape(body)
	}
	h := apiHeaders(rng, host)
	h = append(h, [2]string{"Content-Type", pick(rng, []string{"application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8"})}, [2]string{"Content-Length", fmt.Sprint(len(body))})
	return Entry{Method: method, Path: path, Headers: h, Body: body}
}

func asciiEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '/':
			b.WriteString(`\/`)
		case r > 0x7e && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func apiForm(rng *rand.Rand, host, path string, v url.Values) Entry {
	body := v.Encode()
	h := apiHeaders(rng, host)
	h = append(h, [2]string{"Content-Type", "application/x-www-form-urlencoded"}, [2]string{"Content-Length", fmt.Sprint(len(body))})
	return Entry{Method: "POST", Path: path, Headers: h, Body: body}
}

func apiGet(rng *rand.Rand, host, path string, q url.Values) Entry {
	e := Entry{Method: "GET", Path: path, Headers: apiHeaders(rng, host)}
	if q != nil {
		e.Query = q.Encode()
	}
	return e
}

func apiMultipart(rng *rand.Rand, host, path string, fields map[string]string, fname, ftype, fdata string) Entry {
	bd := fmt.Sprintf("----WebKitFormBoundary%x", rng.Uint64())
	var b strings.Builder
	for _, k := range []string{"title", "description", "folder", "purpose"} {
		if v, ok := fields[k]; ok {
			fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", bd, k, v)
		}
	}
	fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\nContent-Type: %s\r\n\r\n%s\r\n--%s--\r\n", bd, fname, ftype, fdata, bd)
	h := apiHeaders(rng, host)
	h = append(h, [2]string{"Content-Type", "multipart/form-data; boundary=" + bd}, [2]string{"Content-Length", fmt.Sprint(b.Len())})
	return Entry{Method: "POST", Path: path, Headers: h, Body: b.String()}
}

// apiStyles are the API families of the benign corpus, each a
// generator of one request.
var apiStyles = []struct {
	name string
	gen  func(rng *rand.Rand) Entry
}{
	{"github", func(rng *rand.Rand) Entry {
		repo := fmt.Sprintf("/repos/%s/%s", pick(rng, []string{"octo-org", "acme", "jdoe"}), pick(rng, []string{"widgets", "api-server", "docs.site", "my_lib"}))
		switch rng.IntN(4) {
		case 0:
			return apiGet(rng, "api.github.com", repo+"/issues", url.Values{"state": {pick(rng, []string{"open", "closed", "all"})}, "labels": {pick(rng, []string{"bug,help wanted", "good first issue", "area/db"})}, "per_page": {"100"}, "page": {fmt.Sprint(rng.IntN(5) + 1)}})
		case 1:
			return apiJSON(rng, "api.github.com", "POST", repo+"/issues", map[string]any{"title": pick(rng, issueTitles), "body": pick(rng, prose) + "\n\n" + pick(rng, codeSnippets), "labels": []string{"bug"}, "assignees": []string{"octocat"}})
		case 2:
			return apiJSON(rng, "api.github.com", "POST", fmt.Sprintf("%s/issues/%d/comments", repo, rng.IntN(5000)), map[string]any{"body": pick(rng, codeSnippets) + "\n" + pick(rng, comments)})
		default:
			return apiGet(rng, "api.github.com", "/search/code", url.Values{"q": {pick(rng, []string{"addClass in:file language:js repo:jquery/jquery", "select from user:octocat", "filename:.env NOT example", "\"DROP TABLE\" language:sql"})}})
		}
	}},
	{"stripe", func(rng *rand.Rand) Entry {
		name, email := person(rng)
		switch rng.IntN(3) {
		case 0:
			return apiForm(rng, "api.stripe.com", "/v1/customers", url.Values{"name": {name}, "email": {email}, "description": {pick(rng, prose)}, "metadata[order_id]": {fmt.Sprint(rng.IntN(1e6))}, "address[line1]": {fmt.Sprintf("%d O'Connell St", rng.IntN(300))}})
		case 1:
			return apiForm(rng, "api.stripe.com", "/v1/payment_intents", url.Values{"amount": {fmt.Sprint(rng.IntN(1e5))}, "currency": {pick(rng, []string{"usd", "eur", "gbp"})}, "payment_method_types[]": {"card"}, "statement_descriptor": {"ACME* ORDER"}, "metadata[note]": {pick(rng, prose)}})
		default:
			return apiGet(rng, "api.stripe.com", "/v1/charges/search", url.Values{"query": {pick(rng, []string{"amount>999 AND metadata['order_id']:'6735'", "status:'succeeded' AND currency:'usd'", "email~'example.com'", "created>1700000000 OR -refunded:true"})}, "limit": {"10"}})
		}
	}},
	{"slack", func(rng *rand.Rand) Entry {
		if rng.IntN(2) == 0 {
			return apiJSON(rng, "slack.com", "POST", "/api/chat.postMessage", map[string]any{"channel": fmt.Sprintf("C%08X", rng.Uint32()), "text": pick(rng, slackTexts), "blocks": []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": pick(rng, slackTexts)}}}})
		}
		return apiForm(rng, "slack.com", "/api/chat.update", url.Values{"channel": {fmt.Sprintf("C%08X", rng.Uint32())}, "ts": {fmt.Sprintf("%d.%06d", 1700000000+rng.IntN(1e7), rng.IntN(1e6))}, "text": {pick(rng, slackTexts)}})
	}},
	{"elasticsearch", func(rng *rand.Rand) Entry {
		idx := pick(rng, []string{"products", "logs-2024.05.01", "orders", "articles"})
		q := map[string]any{"query": map[string]any{"bool": map[string]any{
			"must":   []any{map[string]any{"match": map[string]any{"title": pick(rng, searchQueries)}}},
			"filter": []any{map[string]any{"range": map[string]any{"price": map[string]any{"gte": rng.IntN(50), "lte": 100 + rng.IntN(900)}}}, map[string]any{"term": map[string]any{"status": pick(rng, statuses)}}},
		}}, "sort": []any{map[string]any{"_score": "desc"}}, "size": 20, "from": rng.IntN(10) * 20}
		switch rng.IntN(4) {
		case 0:
			q = map[string]any{"query": map[string]any{"query_string": map[string]any{"query": pick(rng, searchQueries), "default_operator": "AND"}}}
		case 1:
			q["aggs"] = map[string]any{"by_status": map[string]any{"terms": map[string]any{"field": "status.keyword", "size": 10}}}
		case 2:
			q = map[string]any{"query": map[string]any{"script_score": map[string]any{"query": map[string]any{"match_all": map[string]any{}}, "script": map[string]any{"source": "doc['rating'].value * params.factor", "params": map[string]any{"factor": 1.2}}}}}
		}
		return apiJSON(rng, "search.example.com:9200", "POST", "/"+idx+"/_search", q)
	}},
	{"graphql", func(rng *rand.Rand) Entry {
		qs := []string{
			"query Repo($owner: String!, $name: String!) { repository(owner: $owner, name: $name) { issues(first: 10, states: OPEN) { nodes { title body } } } }",
			"mutation AddComment($id: ID!, $body: String!) { addComment(input: {subjectId: $id, body: $body}) { clientMutationId } }",
			"query { viewer { login repositories(first: 5, orderBy: {field: UPDATED_AT, direction: DESC}) { nodes { name } } } }",
			"query Search($q: String!) { search(query: $q, type: ISSUE, first: 20) { issueCount edges { node { ... on Issue { title } } } } }",
			"fragment userFields on User { id name email }\nquery Users { users(filter: {role: ADMIN, or: [{name: \"x\"}]}) { ...userFields } }",
		}
		return apiJSON(rng, "api.example.com", "POST", "/graphql", map[string]any{"query": pick(rng, qs), "variables": map[string]any{"owner": "acme", "name": "widgets", "id": uuid(rng), "body": pick(rng, comments), "q": pick(rng, searchQueries)}, "operationName": nil})
	}},
	{"openai", func(rng *rand.Rand) Entry {
		msgs := []any{map[string]any{"role": "system", "content": "You are a helpful assistant."}, map[string]any{"role": "user", "content": pick(rng, chatPrompts)}}
		if rng.IntN(2) == 0 {
			msgs = append(msgs, map[string]any{"role": "assistant", "content": pick(rng, codeSnippets)}, map[string]any{"role": "user", "content": pick(rng, chatPrompts)})
		}
		return apiJSON(rng, "api.openai.com", "POST", "/v1/chat/completions", map[string]any{"model": pick(rng, []string{"gpt-4o", "gpt-4o-mini"}), "messages": msgs, "temperature": 0.7, "max_tokens": 512})
	}},
	{"jira", func(rng *rand.Rand) Entry {
		if rng.IntN(2) == 0 {
			return apiGet(rng, "acme.atlassian.net", "/rest/api/3/search", url.Values{"jql": {pick(rng, []string{"project = WEB AND status in (Open, \"In Progress\") ORDER BY created DESC", "assignee = currentUser() AND resolution = Unresolved", "text ~ \"login error\" AND updated >= -7d", "labels in (db, sql) OR component = API"})}, "maxResults": {"50"}, "fields": {"summary,status,assignee"}})
		}
		return apiJSON(rng, "acme.atlassian.net", "POST", "/rest/api/2/issue", map[string]any{"fields": map[string]any{"project": map[string]any{"key": "WEB"}, "summary": pick(rng, issueTitles), "description": "h2. Steps\n# open the page\n# click *Save*\n\n{code:sql}\nSELECT * FROM orders WHERE id = 42;\n{code}\n" + pick(rng, prose), "issuetype": map[string]any{"name": "Bug"}}})
	}},
	{"cms", func(rng *rand.Rand) Entry {
		slug := strings.ToLower(strings.ReplaceAll(pick(rng, issueTitles), " ", "-"))
		if len(slug) > 40 {
			slug = slug[:40]
		}
		return apiJSON(rng, "cms.example.com", pick(rng, []string{"POST", "PUT"}), fmt.Sprintf("/wp-json/wp/v2/posts/%d", rng.IntN(9999)), map[string]any{"title": pick(rng, issueTitles), "slug": url.PathEscape(slug), "content": pick(rng, htmlBodies), "excerpt": pick(rng, prose), "status": "draft", "categories": []int{rng.IntN(20)}})
	}},
	{"s3-upload", func(rng *rand.Rand) Entry {
		kinds := []struct{ name, typ, data string }{
			{"report.csv", "text/csv", "id,name,email,notes\n1,Zoë Smith,zoe@example.com,\"likes \"\"quotes\"\"\"\n2,O'Brien,ob@example.org,n/a\n"},
			{"notes.txt", "text/plain", pick(rng, prose) + "\n" + pick(rng, prose)},
			{"config.json", "application/json", `{"retries":3,"endpoint":"https://api.example.com/v1","tags":["a","b"]}`},
			{"photo.jpg", "image/jpeg", blob(rng, 200)},
			{"invoice.pdf", "application/pdf", "%PDF-1.7\n" + blob(rng, 150)},
		}
		k := kinds[rng.IntN(len(kinds))]
		return apiMultipart(rng, "uploads.example.com", "/api/v1/files", map[string]string{"title": pick(rng, issueTitles), "description": pick(rng, prose), "folder": "reports/2024/Q2"}, k.name, k.typ, k.data)
	}},
	{"twilio", func(rng *rand.Rand) Entry {
		return apiForm(rng, "api.twilio.com", fmt.Sprintf("/2010-04-01/Accounts/AC%032x/Messages.json", rng.Uint64()), url.Values{"To": {fmt.Sprintf("+1555%07d", rng.IntN(1e7))}, "From": {"+15550100000"}, "Body": {pick(rng, append(slackTexts, prose...))}, "StatusCallback": {"https://hooks.example.com/twilio/status?id=" + fmt.Sprint(rng.IntN(1e6))}})
	}},
	{"maps", func(rng *rand.Rand) Entry {
		return apiGet(rng, "maps.example.com", "/maps/api/place/textsearch/json", url.Values{"query": {pick(rng, searchQueries)}, "location": {fmt.Sprintf("%.6f,%.6f", 50+rng.Float64(), -rng.Float64()*5)}, "radius": {"1500"}, "language": {pick(rng, []string{"en", "de", "ja", "pt-BR"})}, "pagetoken": {base64.RawURLEncoding.EncodeToString([]byte(uuid(rng)))}})
	}},
	{"analytics", func(rng *rand.Rand) Entry {
		evs := []any{}
		for i := 0; i < rng.IntN(5)+1; i++ {
			evs = append(evs, map[string]any{"event": pick(rng, []string{"page_view", "add_to_cart", "search", "checkout"}), "properties": map[string]any{
				"url": fmt.Sprintf("https://www.%s/products/%d?utm_source=newsletter&utm_campaign=spring%%2024", pick(rng, domains), rng.IntN(1e4)), "referrer": "https://www.google.com/", "search_term": pick(rng, searchQueries),
				"user_agent": pick(rng, baseUA), "screen": "1920x1080", "title": pick(rng, issueTitles)}, "timestamp": "2024-05-01T12:34:56.789Z"})
		}
		return apiJSON(rng, "events.example.com", "POST", "/v1/batch", map[string]any{"batch": evs, "sentAt": "2024-05-01T12:35:00Z", "writeKey": fmt.Sprintf("wk_%x", rng.Uint64())})
	}},
	{"shop", func(rng *rand.Rand) Entry {
		name, email := person(rng)
		switch rng.IntN(3) {
		case 0:
			return apiJSON(rng, "shop.example.net", "POST", "/api/v2/reviews", map[string]any{"product_id": rng.IntN(1e5), "author": name, "email": email, "rating": rng.IntN(5) + 1, "title": pick(rng, prose), "text": pick(rng, comments) + " " + pick(rng, prose)})
		case 1:
			return apiGet(rng, "shop.example.net", "/api/v2/products", url.Values{"q": {pick(rng, searchQueries)}, "filter[price][gte]": {"10"}, "filter[brand]": {pick(rng, []string{"Levi's", "Dr. Martens", "H&M", "Marks & Spencer"})}, "sort": {pick(rng, sorts)}, "include": {"variants,images"}})
		default:
			return apiJSON(rng, "shop.example.net", "PATCH", fmt.Sprintf("/api/v2/carts/%s", uuid(rng)), map[string]any{"op": "replace", "path": "/items/0/qty", "value": rng.IntN(9) + 1, "gift_message": pick(rng, prose)})
		}
	}},
	{"auth", func(rng *rand.Rand) Entry {
		_, email := person(rng)
		if rng.IntN(2) == 0 {
			return apiForm(rng, "auth.example.com", "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {fmt.Sprintf("%x", rng.Uint64())}, "redirect_uri": {"https://app.example.com/callback"}, "client_id": {"web-app"}, "code_verifier": {blob(rng, 32)}})
		}
		return apiJSON(rng, "auth.example.com", "POST", "/api/v1/signup", map[string]any{"email": email, "password": pick(rng, []string{"S3cr3t!#", "P@ss'w0rd;", "correct horse battery staple", "hunter2==", "Tr0ub4dor&3", "p4$$w0rd--", "<3kittens<3"}), "accept_terms": true, "referral": pick(rng, []string{"", "friend", "google ads", "twitter/x"})})
	}},
}

// generateAPITraffic builds apiPerStyle requests per API style.
func generateAPITraffic() []Entry {
	rng := rand.New(rand.NewPCG(20240501, 7))
	var out []Entry
	for i := 0; i < apiPerStyle; i++ {
		for _, s := range apiStyles {
			e := s.gen(rng)
			e.ID = fmt.Sprintf("api-%s-%04d", s.name, i)
			e.Class = Benign
			e.Where = "api:" + s.name
			out = append(out, e)
		}
	}
	return out
}

// TestGenerateAPITraffic rewrites testdata/benign-api.jsonl with -update
// and otherwise checks the committed file is current.
func TestGenerateAPITraffic(t *testing.T) {
	var b bytes.Buffer
	for _, e := range generateAPITraffic() {
		b.WriteString(mustJSON(e))
		b.WriteByte('\n')
	}
	if *update {
		if err := os.WriteFile(apiTrafficPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(apiTrafficPath)
	if err != nil {
		t.Fatalf("read (run with -update): %v", err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("%s is stale: go test ./bench/detect -run TestGenerateAPITraffic -update", apiTrafficPath)
	}
}
