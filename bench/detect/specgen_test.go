package detectbench

import (
	"encoding/base64"
	"math/rand/v2"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// The spec generator's value derivation at its edges, on small inline
// specs (no tarball needed).

const genTestSpec = `{
  "openapi": "3.0.3",
  "info": {"title": "t", "version": "1"},
  "servers": [{"url": "https://{region}.api.example.com/v2/", "variables": {"region": {"default": "eu"}}}],
  "security": [{"key": []}],
  "paths": {
    "/items/{itemId}": {
      "parameters": [{"name": "itemId", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 10, "maximum": 12}}],
      "get": {
        "parameters": [
          {"name": "tags", "in": "query", "required": true, "schema": {"type": "array", "items": {"type": "string", "enum": ["red", "blue"]}}},
          {"name": "ids", "in": "query", "required": true, "explode": false, "schema": {"type": "array", "items": {"type": "integer"}}, "example": [1, 2]},
          {"name": "filter", "in": "query", "required": true, "style": "deepObject", "schema": {"type": "object"}, "example": {"status": "open now"}},
          {"name": "X-Trace", "in": "header", "required": true, "schema": {"type": "string", "format": "uuid"}},
          {"name": "pref", "in": "cookie", "required": true, "example": "dark mode"}
        ],
        "responses": {"200": {"description": "ok", "content": {"application/json": {}}}}
      }
    },
    "/forms": {
      "post": {
        "security": [{"bearer": []}],
        "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/Form"}}}},
        "responses": {"200": {"description": "ok"}}
      }
    },
    "/upload": {
      "put": {
        "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file", "title"], "properties": {"file": {"type": "string", "format": "binary"}, "title": {"type": "string", "example": "Q2 report"}}}}}},
        "responses": {"200": {"description": "ok"}}
      }
    },
    "/#X-Amz-Target=Svc.Do": {
      "post": {
        "requestBody": {"content": {"application/json": {"example": {"a": 1}}}},
        "responses": {"200": {"description": "ok"}}
      }
    }
  },
  "components": {
    "securitySchemes": {
      "key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
      "bearer": {"type": "http", "scheme": "bearer"}
    },
    "schemas": {
      "Form": {"type": "object", "required": ["name", "address", "when"], "properties": {
        "name": {"type": "string", "maxLength": 3},
        "when": {"type": "string", "format": "date-time"},
        "address": {"$ref": "#/components/schemas/Address"}}},
      "Address": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string", "default": "Dublin"}}},
      "Node": {"type": "object", "required": ["name", "child", "kids"], "properties": {
        "name": {"type": "string"},
        "child": {"$ref": "#/components/schemas/Node"},
        "kids": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Node"}}}},
      "Merged": {"allOf": [
        {"$ref": "#/components/schemas/Address"},
        {"type": "object", "required": ["zip"], "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$", "example": "02139"}}}],
        "required": ["country"], "properties": {"country": {"type": "string", "enum": ["IE"]}}},
      "Choice": {"oneOf": [{"type": "integer", "minimum": 5, "maximum": 5}, {"type": "string"}]}
    }
  }
}`

func loadGenTestSpec(t *testing.T) *openapi3.T {
	t.Helper()
	l := openapi3.NewLoader()
	doc, err := l.LoadFromData([]byte(genTestSpec))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func schemaOf(t *testing.T, js string) *openapi3.SchemaRef {
	t.Helper()
	var s openapi3.Schema
	if err := s.UnmarshalJSON([]byte(js)); err != nil {
		t.Fatal(err)
	}
	return &openapi3.SchemaRef{Value: &s}
}

func TestSpecGenScalars(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		g := &specGen{rng: rand.New(rand.NewPCG(seed, 1))}
		if v := g.value(schemaOf(t, `{"type":"string","enum":["a","b",null]}`), 0); v != "a" && v != "b" {
			t.Fatalf("enum: %v", v)
		}
		if v := g.value(schemaOf(t, `{"type":"integer","minimum":3,"maximum":5}`), 0).(int64); v < 3 || v > 5 {
			t.Fatalf("min/max: %d", v)
		}
		if v := g.value(schemaOf(t, `{"type":"integer","minimum":3,"maximum":4,"exclusiveMinimum":true}`), 0).(int64); v != 4 {
			t.Fatalf("exclusiveMinimum: %d", v)
		}
		if v := g.value(schemaOf(t, `{"type":"integer","maximum":-5}`), 0).(int64); v > -5 {
			t.Fatalf("max only: %d", v)
		}
		if v := g.value(schemaOf(t, `{"type":"number","minimum":0.5,"maximum":0.75}`), 0).(float64); v < 0.5 || v > 0.75 {
			t.Fatalf("number: %v", v)
		}
		if v := g.value(schemaOf(t, `{"type":"string","maxLength":4}`), 0).(string); len(v) > 4 || v == "" {
			t.Fatalf("maxLength: %q", v)
		}
		if v := g.value(schemaOf(t, `{"type":"string","minLength":30}`), 0).(string); len(v) < 30 {
			t.Fatalf("minLength: %q", v)
		}
		if v := g.value(schemaOf(t, `{"type":"array","items":{"type":"boolean"},"maxItems":2}`), 0).([]any); len(v) < 1 || len(v) > 2 {
			t.Fatalf("array: %v", v)
		}
		fmt := func(f string) string { return g.value(schemaOf(t, `{"type":"string","format":"`+f+`"}`), 0).(string) }
		if _, err := time.Parse("2006-01-02", fmt("date")); err != nil {
			t.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339, fmt("date-time")); err != nil {
			t.Fatal(err)
		}
		if _, err := mail.ParseAddress(fmt("email")); err != nil {
			t.Fatal(err)
		}
		if u := fmt("uuid"); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(u) {
			t.Fatalf("uuid %q", u)
		}
		if u, err := url.Parse(fmt("uri")); err != nil || u.Scheme != "https" || u.Host == "" {
			t.Fatalf("uri %v %v", u, err)
		}
		if ip := net.ParseIP(fmt("ipv4")); ip == nil || ip.To4() == nil {
			t.Fatal("ipv4")
		}
		if h := fmt("hostname"); !regexp.MustCompile(`^[a-z0-9.-]+$`).MatchString(h) || !strings.Contains(h, ".") {
			t.Fatalf("hostname %q", h)
		}
		if _, err := base64.StdEncoding.DecodeString(fmt("byte")); err != nil {
			t.Fatal(err)
		}
		if g.derived != true {
			t.Fatal("derived values not marked")
		}
	}
}

func TestSpecGenExamplesFirst(t *testing.T) {
	g := &specGen{rng: rand.New(rand.NewPCG(1, 1))}
	if v := g.value(schemaOf(t, `{"type":"string","format":"email","example":"doc@example.com","enum":["x"]}`), 0); v != "doc@example.com" || g.derived {
		t.Fatalf("schema example: %v derived=%v", v, g.derived)
	}
	p := &openapi3.Parameter{Name: "q", In: "query", Schema: schemaOf(t, `{"type":"string","example":"schema"}`),
		Examples: openapi3.Examples{"b": {Value: &openapi3.Example{Value: "second"}}, "a": {Value: &openapi3.Example{Value: "first"}}}}
	if v := g.paramValue(p); v != "first" || g.derived {
		t.Fatalf("parameter examples: %v", v)
	}
	p.Example = "direct"
	if v := g.paramValue(p); v != "direct" {
		t.Fatalf("parameter example: %v", v)
	}
	mt := &openapi3.MediaType{Schema: schemaOf(t, `{"type":"object","required":["a"],"properties":{"a":{"type":"string"}}}`),
		Examples: openapi3.Examples{"one": {Value: &openapi3.Example{Value: map[string]any{"a": "doc"}}}}}
	if v := g.mediaValue(mt).(map[string]any); v["a"] != "doc" || g.derived {
		t.Fatalf("media examples: %v", v)
	}
}

func TestSpecGenRefsAllOfCycles(t *testing.T) {
	doc := loadGenTestSpec(t)
	sc := doc.Components.Schemas
	for seed := uint64(0); seed < 50; seed++ {
		g := &specGen{rng: rand.New(rand.NewPCG(seed, 2))}
		// Nested refs: Form -> Address, required properties present.
		f := g.value(sc["Form"], 0).(map[string]any)
		if f["address"].(map[string]any)["city"] != "Dublin" || len(f["name"].(string)) > 3 {
			t.Fatalf("nested ref: %v", f)
		}
		// allOf: the parts' and the schema's own required properties merged.
		m := g.value(sc["Merged"], 0).(map[string]any)
		if m["city"] != "Dublin" || m["zip"] != "02139" || m["country"] != "IE" {
			t.Fatalf("allOf: %v", m)
		}
		// oneOf: the first alternative.
		if v := g.value(sc["Choice"], 0); v != int64(5) {
			t.Fatalf("oneOf: %v", v)
		}
		// A recursive schema terminates at the depth bound.
		n := g.value(sc["Node"], 0)
		depth := 0
		for cur := n; ; depth++ {
			mm, ok := cur.(map[string]any)
			if !ok || len(mm) == 0 {
				break
			}
			cur = mm["child"]
		}
		if depth == 0 || depth > specMaxDepth {
			t.Fatalf("recursion depth %d: %v", depth, n)
		}
		if len(mustJSON(n)) > 1<<16 {
			t.Fatalf("recursive value too large: %d bytes", len(mustJSON(n)))
		}
	}
}

func TestSpecGenRequests(t *testing.T) {
	data := []byte(genTestSpec)
	es, err := specRequests("package/api/example.com/test.json", data, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != specMaxOps {
		t.Fatalf("%d requests, want %d", len(es), specMaxOps)
	}
	again, _ := specRequests("package/api/example.com/test.json", data, "example.com")
	if mustJSON(es) != mustJSON(again) {
		t.Fatal("not deterministic")
	}
	// Every operation, one by one.
	doc := loadGenTestSpec(t)
	g := &specGen{rng: rand.New(rand.NewPCG(3, 3))}
	byPath := map[string]Entry{}
	for _, p := range doc.Paths.Keys() {
		item := doc.Paths.Value(p)
		for _, m := range specMethods {
			if op := item.GetOperation(m); op != nil {
				e, ok := g.request(doc, "example.com", specOp{path: p, method: m, item: item, op: op})
				if !ok {
					t.Fatalf("%s %s not built", m, p)
				}
				byPath[p] = e
			}
		}
	}
	hdr := func(e Entry, name string) string {
		for _, h := range e.Headers {
			if strings.EqualFold(h[0], name) {
				return h[1]
			}
		}
		return ""
	}
	get := byPath["/items/{itemId}"]
	if !regexp.MustCompile(`^/v2/items/1[0-2]$`).MatchString(get.Path) || hdr(get, "Host") != "eu.api.example.com" {
		t.Fatalf("path/host: %s %s", get.Path, hdr(get, "Host"))
	}
	if !regexp.MustCompile(`^(tags=(red|blue)&){1,3}ids=1%2C2&filter%5Bstatus%5D=open\+now$`).MatchString(get.Query) {
		t.Fatalf("query: %s", get.Query)
	}
	if len(hdr(get, "X-Api-Key")) != 32 || len(hdr(get, "X-Trace")) != 36 || hdr(get, "Cookie") != "pref=dark+mode" || hdr(get, "Accept") == "" {
		t.Fatalf("headers: %v", get.Headers)
	}
	if get.Src != "schema" {
		t.Fatalf("src %q", get.Src)
	}
	form := byPath["/forms"]
	if !strings.HasPrefix(hdr(form, "Authorization"), "Bearer eyJhbGciOiJSUzI1NiIs") || hdr(form, "Content-Type") != "application/x-www-form-urlencoded" {
		t.Fatalf("form headers: %v", form.Headers)
	}
	if !regexp.MustCompile(`^address%5Bcity%5D=Dublin&name=[a-z0-9]{1,3}&when=20[0-9-]+T[0-9]{2}%3A`).MatchString(form.Body) || hdr(form, "Content-Length") != itoa(len(form.Body)) {
		t.Fatalf("form body: %s", form.Body)
	}
	up := byPath["/upload"]
	if !strings.HasPrefix(hdr(up, "Content-Type"), "multipart/form-data; boundary=") || !strings.Contains(up.Body, `name="file"; filename="`) || !strings.Contains(up.Body, "\r\n\r\nQ2 report\r\n") {
		t.Fatalf("multipart: %v %q", up.Headers, up.Body)
	}
	aws := byPath["/#X-Amz-Target=Svc.Do"]
	if aws.Path != "/v2/" || aws.Body != `{"a":1}` || aws.Src != "examples" || hdr(aws, "Content-Type") == "" {
		t.Fatalf("fragment path / example body: %+v", aws)
	}
}

func itoa(n int) string { return strings.TrimSpace(mustJSON(n)) }
