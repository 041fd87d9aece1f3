package inventory

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// valueKinds is the set of kinds seen for one parameter. A set, not a
// counter per kind, because the type only needs to widen: once a parameter
// has carried a word it is a string forever.
type valueKinds uint16

const (
	kindInt valueKinds = 1 << iota
	kindNum
	kindBool
	kindStr
	kindUUID
	kindEmail
	kindDate
	kindDateTime
)

const formatKinds = kindUUID | kindEmail | kindDate | kindDateTime

// classifyValue returns the kind of one query or path value.
func classifyValue(v string) valueKinds {
	switch {
	case v == "":
		return kindStr
	case isInteger(v):
		return kindInt
	case v == "true" || v == "false":
		return kindBool
	case isNumber(v):
		return kindNum
	case isUUID(v):
		return kindUUID
	case isDate(v):
		return kindDate
	case isDateTime(v):
		return kindDateTime
	case isEmail(v):
		return kindEmail
	}
	return kindStr
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	dot, digit := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c == '.' && !dot:
			dot = true
		case c == '-' && i == 0:
		default:
			return false
		}
	}
	return digit
}

// resolve turns the kinds seen into an OpenAPI type and format: integers
// widen to numbers, any other mix is a plain string, a string format stays
// only when every value had it.
func (k valueKinds) resolve() (typ, format string) {
	switch {
	case k == 0:
		return "string", ""
	case k == kindInt:
		return "integer", ""
	case k&^(kindInt|kindNum) == 0:
		return "number", ""
	case k == kindBool:
		return "boolean", ""
	case k == kindUUID:
		return "string", "uuid"
	case k == kindEmail:
		return "string", "email"
	case k == kindDate:
		return "string", "date"
	case k == kindDateTime:
		return "string", "date-time"
	}
	return "string", ""
}

// inferLimits bounds schema inference of one body.
type inferLimits struct {
	maxDepth int
	maxProps int
	maxNodes int
}

// inferResult is what one sampled body contributes.
type inferResult struct {
	schema    *Schema
	sensitive sensitiveSet
	nodes     int // schema nodes created, bounded by maxNodes
	// dropped counts object keys and subtrees left out by the bounds.
	dropped int
}

// inferJSON builds the schema of one JSON body and collects the sensitive
// data kinds in its keys and leaves. It returns ok=false when the body is
// not one complete JSON value.
func inferJSON(body []byte, lim inferLimits) (inferResult, bool) {
	v, ok := decodeJSON(body)
	if !ok {
		return inferResult{}, false
	}
	var r inferResult
	r.schema = r.infer(v, 0, lim)
	return r, true
}

// decodeJSON decodes the first JSON value of body, numbers kept as text.
func decodeJSON(body []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

func (r *inferResult) infer(v any, depth int, lim inferLimits) *Schema {
	r.nodes++
	switch x := v.(type) {
	case nil:
		return &Schema{Type: "null"}
	case bool:
		return &Schema{Type: "boolean"}
	case json.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			return &Schema{Type: "number"}
		}
		r.sensitive |= sensitiveInNumber(s)
		return &Schema{Type: "integer"}
	case string:
		r.sensitive |= sensitiveInValue(x)
		return &Schema{Type: "string", Format: stringFormat(x)}
	case []any:
		s := &Schema{Type: "array"}
		if depth >= lim.maxDepth || r.nodes >= lim.maxNodes {
			r.dropped += min(len(x), 1)
			return s
		}
		// Merging moves nodes, never creates them, so r.nodes alone
		// bounds the sample: the merge budget is unlimited here.
		bud := schemaBudget{maxProps: lim.maxProps, left: math.MaxInt}
		for _, e := range x {
			if r.nodes >= lim.maxNodes {
				r.dropped++
				break
			}
			s.Items = mergeSchema(s.Items, r.infer(e, depth+1, lim), &bud)
		}
		r.dropped += bud.dropped
		return s
	case map[string]any:
		s := &Schema{Type: "object"}
		if len(x) == 0 {
			return s
		}
		if depth >= lim.maxDepth || r.nodes >= lim.maxNodes {
			r.dropped++
			return s
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) > lim.maxProps {
			r.dropped += len(keys) - lim.maxProps
			keys = keys[:lim.maxProps]
		}
		s.Properties = make(map[string]*Schema, len(keys))
		for i, k := range keys {
			if r.nodes >= lim.maxNodes {
				r.dropped += len(keys) - i
				keys = keys[:i]
				break
			}
			r.sensitive |= sensitiveInKey(k)
			s.Properties[k] = r.infer(x[k], depth+1, lim)
		}
		s.Required = keys
		return s
	}
	return &Schema{}
}

// schemaSize counts the nodes of a schema.
func schemaSize(s *Schema) int {
	if s == nil {
		return 0
	}
	n := 1 + schemaSize(s.Items)
	for _, p := range s.Properties {
		n += schemaSize(p)
	}
	return n
}

// schemaBudget bounds what a merge may add to a schema: maxProps per
// object and left nodes in all. Properties that do not fit are counted in
// dropped.
type schemaBudget struct {
	maxProps int
	left     int
	dropped  int
}

// stringFormat recognises the formats OpenAPI tools understand.
func stringFormat(s string) string {
	switch {
	case isUUID(s):
		return "uuid"
	case isDateTime(s):
		return "date-time"
	case isDate(s):
		return "date"
	case isEmail(s):
		return "email"
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		return "uri"
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return "ipv4"
	}
	return ""
}

// mergeSchema merges b into a and returns the result; it takes ownership of
// both. Required is intersected (a key is required only when every sample
// had it), integer and number widen to number, null makes the other side
// nullable, and any other type conflict gives an untyped schema. Nodes that
// b adds to a are charged to bud.
func mergeSchema(a, b *Schema, bud *schemaBudget) *Schema {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if b.Type == "null" {
		a.Nullable = true
		return a
	}
	if a.Type == "null" {
		b.Nullable = true
		return b
	}
	a.Nullable = a.Nullable || b.Nullable
	if a.Type != b.Type {
		if (a.Type == "integer" || a.Type == "number") && (b.Type == "integer" || b.Type == "number") {
			a.Type, a.Format = "number", ""
			return a
		}
		*a = Schema{Nullable: a.Nullable}
		return a
	}
	switch a.Type {
	case "object":
		for _, k := range sortedSchemaKeys(b.Properties) {
			bs := b.Properties[k]
			if as, ok := a.Properties[k]; ok {
				a.Properties[k] = mergeSchema(as, bs, bud)
				continue
			}
			cost := schemaSize(bs)
			if len(a.Properties) >= bud.maxProps || cost > bud.left {
				bud.dropped++
				continue
			}
			bud.left -= cost
			if a.Properties == nil {
				a.Properties = map[string]*Schema{}
			}
			a.Properties[k] = bs
		}
		a.Required = intersectSorted(a.Required, b.Required)
	case "array":
		if a.Items == nil && b.Items != nil {
			cost := schemaSize(b.Items)
			if cost > bud.left {
				bud.dropped++
				return a
			}
			bud.left -= cost
		}
		a.Items = mergeSchema(a.Items, b.Items, bud)
	default:
		if a.Format != b.Format {
			a.Format = ""
		}
		if !slices.Equal(a.Enum, b.Enum) {
			a.Enum = nil // different declarations: no common list to claim
		}
	}
	return a
}

// sortedSchemaKeys keeps merges deterministic when a bound cuts properties.
func sortedSchemaKeys(m map[string]*Schema) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// intersectSorted intersects two sorted string slices in place of a.
func intersectSorted(a, b []string) []string {
	out := a[:0]
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			out = append(out, a[i])
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// cloneSchema deep-copies a schema so snapshots never alias live state.
func cloneSchema(s *Schema) *Schema {
	if s == nil {
		return nil
	}
	c := *s
	if s.Properties != nil {
		c.Properties = make(map[string]*Schema, len(s.Properties))
		for k, v := range s.Properties {
			c.Properties[k] = cloneSchema(v)
		}
	}
	if s.Required != nil {
		c.Required = append([]string(nil), s.Required...)
	}
	c.Items = cloneSchema(s.Items)
	c.Enum = slices.Clone(s.Enum)
	return &c
}

// mediaType returns the lower-cased media type of a Content-Type value.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(ct)
		}
	}
	return ct
}

// isJSONMedia matches application/json and the +json suffix types.
func isJSONMedia(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// inferForm builds an object schema from a URL-encoded form body: one
// property per field, typed like query parameters. Login forms are where
// passwords travel, so the sensitive checks apply as for JSON.
func inferForm(body []byte, lim inferLimits) inferResult {
	var r inferResult
	fields, _, sens := parseQuery(string(body), 0)
	r.sensitive = sens
	s := &Schema{Type: "object"}
	for _, f := range fields {
		if s.Properties == nil {
			s.Properties = map[string]*Schema{}
		}
		if len(s.Properties) >= lim.maxProps {
			r.dropped++
			continue
		}
		typ, format := f.kind.resolve()
		s.Properties[f.name] = &Schema{Type: typ, Format: format}
		s.Required = append(s.Required, f.name)
	}
	sort.Strings(s.Required)
	r.schema = s
	return r
}
