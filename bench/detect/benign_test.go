package detectbench

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
)

// Realistic API traffic that trips naive detectors: apostrophes in names,
// prose with SQL and shell words, HTML and markdown in comment fields,
// URLs to public hosts, base64, JWTs, unicode and e-mail addresses.
var (
	firstNames = []string{"Seán", "Zoë", "Mary-Kate", "D'Angelo", "Jürgen", "Aoife", "José", "Chloé", "Liam", "Søren", "Ngozi", "Yuki", "Anaïs", "Mohammed", "O'Neil", "Łukasz"}
	lastNames  = []string{"O'Brien", "D'Arcy", "van der Berg", "Müller", "García-López", "Nguyễn", "O'Connor", "St. John", "Smith-Jones", "Kowalski", "Da Silva", "McDonald", "Ó Súilleabháin"}
	prose      = []string{
		"select the best option from the menu",
		"Please delete my old address and insert the new one",
		"where can I find the order from last week?",
		"union station to downtown, drop off at 5pm",
		"I'd like to update my account; it's been a while",
		"Can't log in - password reset link expired (again)",
		"Tom & Jerry's cafe: open 9-5, closed on Sundays",
		"the table is 1=1 meter wide or so",
		"50% off all shoes — today only!",
		"Is there an OR/AND filter for tags?",
		"Great product!!! Would buy again :) 5/5",
		"sleep better with our new mattress (120x200)",
		"cat food, dog food & bird seed",
		"Check out https://www.example.org/blog/2024/03/release-notes?utm_source=newsletter",
		"Meeting @ 10:30; bring the Q3 report",
		"How do I echo a message in the app? Settings > Notifications",
		"script for the school play: act 1, scene 2",
		"I ping'd support twice; no answer yet",
		"Using C:\\Users\\me\\Documents for exports, is that OK?",
		"Price: $19.99 (was $24.99) - save 20%",
		"¿Dónde está mi pedido? Gracias 🙏",
		"納期はいつですか？よろしくお願いします。",
		"Привет! Подскажите статус заказа №4512",
		"1 + 1 = 2, and 2 * 3 = 6",
		"My name is Robert'); just kidding, it is Bob",
		"Order #A-1023 / return label needed",
		"The file is in ../shared (the team folder)",
		"wget and curl are both fine for the download, I guess",
	}
	comments = []string{
		"<p>Thanks for the quick reply!</p>",
		"**Bold** claim: this _works_ with `npm install` and [docs](https://docs.example.com/start)",
		"<b>Note:</b> the <i>blue</i> one is out of stock",
		"Line one\nLine two\n\n- bullet\n- another bullet",
		"See <a href=\"https://www.example.com/help\">the help page</a> for details.",
		"> quoted reply\nMy answer is yes.",
		"```\nfunc main() {}\n```",
		"Rating: ★★★★☆",
		"Use {name} and {date} as placeholders in the template",
		"Email me at support@example.com or call +1 (555) 010-9999",
		"<ul><li>apples</li><li>pears</li></ul>",
		"Hello {{ first_name }}, your order shipped",
		"Dear team,\r\nPlease find the invoice attached.\r\nRegards,\r\nAnna",
		"It's 100% cotton, isn't it?",
		"I'm <3 this store",
		"Cost = price * qty - discount",
	}
	domains  = []string{"example.com", "example.org", "shop.example.net", "cdn.example.io", "partner.example.co.uk"}
	statuses = []string{"pending", "shipped", "delivered", "cancelled", "refunded"}
	sorts    = []string{"-created_at", "name", "price,-rating", "updated_at", "id"}
	tags     = []string{"summer-sale", "new", "c++", "node.js", "a/b-test", "50%off", "kids & baby", "größe:m"}
)

func jwt(rng *rand.Rand) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"k1"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"%d","scope":"read:orders write:cart","exp":%d}`, rng.IntN(1e6), 1_800_000_000+rng.IntN(1e6))))
	sig := make([]byte, 64)
	for i := range sig {
		sig[i] = byte(rng.IntN(256))
	}
	return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func blob(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func uuid(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Uint64()&(1<<48-1))
}

func person(rng *rand.Rand) (string, string) {
	f, l := pick(rng, firstNames), pick(rng, lastNames)
	email := strings.ToLower(strings.NewReplacer("'", "", " ", "", "é", "e", "ë", "e", "ü", "u", "ø", "o", "ï", "i", "Ł", "l", "ó", "o", "á", "a", "ễ", "e", ".", "").Replace(f+"."+l)) + "@" + pick(rng, domains)
	return f + " " + l, email
}

func withAuth(rng *rand.Rand, h [][2]string) [][2]string {
	switch rng.IntN(3) {
	case 0:
		h = append(h, [2]string{"Authorization", "Bearer " + jwt(rng)})
	case 1:
		h = append(h, [2]string{"Cookie", "session=" + blob(rng, 24) + "; theme=dark; _ga=GA1.2." + fmt.Sprint(rng.Uint32())})
	default:
		h = append(h, [2]string{"X-Api-Key", fmt.Sprintf("ak_live_%x", rng.Uint64())})
	}
	if rng.IntN(2) == 0 {
		h = append(h, [2]string{"X-Request-Id", uuid(rng)})
	}
	if rng.IntN(3) == 0 {
		h = append(h, [2]string{"Referer", "https://app.example.com/orders?page=" + fmt.Sprint(rng.IntN(9)+1)})
	}
	if rng.IntN(4) == 0 {
		h = append(h, [2]string{"X-Forwarded-For", fmt.Sprintf("203.0.113.%d, 198.51.100.%d", rng.IntN(250), rng.IntN(250))})
	}
	return h
}

func jsonReq(rng *rand.Rand, method, path string, doc any) Entry {
	body := mustJSON(doc)
	h := withAuth(rng, baseHeaders(rng))
	h = append(h, [2]string{"Content-Type", pick(rng, []string{"application/json", "application/json; charset=utf-8"})}, [2]string{"Content-Length", fmt.Sprint(len(body))})
	return Entry{Method: method, Path: path, Headers: h, Body: body, Where: "json"}
}

func formReq(rng *rand.Rand, path string, v url.Values) Entry {
	body := v.Encode()
	h := withAuth(rng, baseHeaders(rng))
	h[2][1] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	h = append(h, [2]string{"Content-Type", "application/x-www-form-urlencoded"}, [2]string{"Content-Length", fmt.Sprint(len(body))})
	return Entry{Method: "POST", Path: path, Headers: h, Body: body, Where: "form"}
}

func getReq(rng *rand.Rand, path string, q url.Values) Entry {
	e := Entry{Method: "GET", Path: path, Headers: withAuth(rng, baseHeaders(rng)), Where: "query"}
	if q != nil {
		e.Query = q.Encode()
	}
	return e
}

// benignCorpus builds 320 requests from 16 templates, 20 each.
func benignCorpus(rng *rand.Rand) []Entry {
	templates := []func() Entry{
		func() Entry { // resource by id
			return getReq(rng, fmt.Sprintf("/api/v1/users/%d/orders/%d", rng.IntN(1e5), rng.IntN(1e6)), url.Values{"include": {"items,shipping"}, "fields[order]": {"id,total,status"}})
		},
		func() Entry { // list with filters
			return getReq(rng, "/api/v1/orders", url.Values{"status": {pick(rng, statuses)}, "sort": {pick(rng, sorts)}, "page": {fmt.Sprint(rng.IntN(20) + 1)}, "limit": {"50"}, "created_after": {"2024-03-01T00:00:00Z"}})
		},
		func() Entry { // free-text search with prose
			return getReq(rng, "/api/v1/search", url.Values{"q": {pick(rng, prose)}, "lang": {pick(rng, []string{"en-US", "de-DE", "ja", "es"})}})
		},
		func() Entry { // public URLs in parameters
			return getReq(rng, "/api/v1/link-preview", url.Values{"url": {fmt.Sprintf("https://www.%s/articles/%d?ref=home#top", pick(rng, domains), rng.IntN(1e4))}, "redirect_uri": {"https://app.example.com/oauth/callback"}})
		},
		func() Entry { // uuid path, static
			return getReq(rng, fmt.Sprintf("/api/v2/documents/%s/versions/%d/report.2024-Q%d.pdf", uuid(rng), rng.IntN(9)+1, rng.IntN(4)+1), nil)
		},
		func() Entry { // tags and email lookups
			_, email := person(rng)
			return getReq(rng, "/api/v1/customers", url.Values{"email": {email}, "tag": {pick(rng, tags)}, "phone": {"+44 20 7946 0958"}})
		},
		func() Entry { // create user
			name, email := person(rng)
			return jsonReq(rng, "POST", "/api/v1/users", map[string]any{"name": name, "email": email, "bio": pick(rng, prose), "locale": "en-IE",
				"address": map[string]any{"line1": fmt.Sprintf("%d O'Connell St.", rng.IntN(200)+1), "city": pick(rng, []string{"Dublin", "Zürich", "São Paulo", "Kraków"}), "zip": fmt.Sprintf("%05d", rng.IntN(99999))}})
		},
		func() Entry { // comment with HTML/markdown
			name, _ := person(rng)
			return jsonReq(rng, "POST", fmt.Sprintf("/api/v1/posts/%d/comments", rng.IntN(1e4)), map[string]any{"author": name, "body": pick(rng, comments), "format": pick(rng, []string{"markdown", "html", "text"})})
		},
		func() Entry { // order with items
			items := []any{}
			for i := 0; i < rng.IntN(4)+1; i++ {
				items = append(items, map[string]any{"sku": fmt.Sprintf("SKU-%05d", rng.IntN(99999)), "qty": rng.IntN(5) + 1, "note": pick(rng, prose), "price": 9.99 + float64(i)})
			}
			return jsonReq(rng, "POST", "/api/v1/orders", map[string]any{"items": items, "coupon": "SPRING-24", "gift": rng.IntN(2) == 0, "message": pick(rng, comments)})
		},
		func() Entry { // file upload metadata with base64
			return jsonReq(rng, "PUT", fmt.Sprintf("/api/v1/users/%d/avatar", rng.IntN(1e5)), map[string]any{"filename": "photo-" + fmt.Sprint(rng.IntN(100)) + ".png", "content_type": "image/png", "data": blob(rng, 300+rng.IntN(600))})
		},
		func() Entry { // webhook registration with public URL
			return jsonReq(rng, "POST", "/api/v1/webhooks", map[string]any{"url": fmt.Sprintf("https://hooks.%s/in/%x", pick(rng, domains), rng.Uint32()), "events": []string{"order.created", "order.updated"}, "secret": fmt.Sprintf("whsec_%x", rng.Uint64())})
		},
		func() Entry { // patch settings, unicode
			return jsonReq(rng, "PATCH", "/api/v1/settings", map[string]any{"display_name": pick(rng, []string{"山田太郎", "Zoë 🌸", "Jean-Luc", "محمد"}), "timezone": "Europe/Dublin", "notifications": map[string]any{"email": true, "sms": false}, "signature": "-- \nSent from my phone"})
		},
		func() Entry { // graphql
			return jsonReq(rng, "POST", "/graphql", map[string]any{"query": "query Orders($first: Int, $after: String) { orders(first: $first, after: $after) { edges { node { id total status } } } }", "variables": map[string]any{"first": 20, "after": nil}, "operationName": "Orders"})
		},
		func() Entry { // login form
			_, email := person(rng)
			return formReq(rng, "/login", url.Values{"email": {email}, "password": {pick(rng, []string{"S3cr3t!#", "correct horse battery staple", "P@ss'w0rd;", "hunter2=="})}, "remember": {"on"}})
		},
		func() Entry { // contact form
			name, email := person(rng)
			return formReq(rng, "/contact", url.Values{"name": {name}, "email": {email}, "subject": {pick(rng, prose)}, "message": {pick(rng, comments)}})
		},
		func() Entry { // delete / xml / misc
			switch rng.IntN(3) {
			case 0:
				e := getReq(rng, fmt.Sprintf("/api/v1/carts/%s/items/%d", uuid(rng), rng.IntN(50)), nil)
				e.Method = "DELETE"
				return e
			case 1:
				body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><order><id>%d</id><customer>%s</customer><note>Leave at the door &amp; ring</note></order>`, rng.IntN(1e5), pick(rng, lastNames))
				h := withAuth(rng, baseHeaders(rng))
				h = append(h, [2]string{"Content-Type", "application/xml"}, [2]string{"Content-Length", fmt.Sprint(len(body))})
				return Entry{Method: "POST", Path: "/api/v1/import/orders", Headers: h, Body: body, Where: "body"}
			default:
				return getReq(rng, "/api/v1/export", url.Values{"format": {"csv"}, "columns": {"id,name,email,created_at"}, "filter": {"status:active AND country:IE"}, "path": {"reports/2024/summary.csv"}})
			}
		},
	}
	var out []Entry
	for i := 0; i < 20; i++ {
		for _, t := range templates {
			out = append(out, t())
		}
	}
	return out
}
