// Package openapi exports an inventory snapshot as an OpenAPI 3.0.3
// document, so the APIs apiwarden discovered can be read by the usual
// OpenAPI tooling.
//
// Layout of the document:
//   - one path per path template, with "{param}" placeholders and every path
//     parameter declared (required, typed);
//   - one tag per service ("<name>:<port>", described by its executable);
//     each operation carries its service's tag and x-apiwarden-service;
//   - when two services serve the same method on the same template, both
//     operations are moved under a per-service prefix "/<name>-<port>" so
//     they stay distinguishable, and x-apiwarden-path keeps the real
//     template. Info.Service builds a one-service document instead, which
//     never needs a prefix;
//   - security schemes are derived from the auth schemes seen; an
//     operation lists each as an alternative, plus {} when anonymous
//     requests were seen;
//   - x-apiwarden-* extensions carry the observations (counts, first and
//     last seen, status counts, processes, sensitive data kinds, TLS).
//
// Methods OpenAPI 3.0 cannot express (CONNECT, WebDAV verbs, ...) are left
// out and counted in the document extension x-apiwarden-skipped-operations.
package openapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

// Info describes the document.
type Info struct {
	Title       string // default "apiwarden discovered API"
	Version     string // default "1.0.0"
	Description string
	// Service, when set, keeps only that service: "name" (every port) or
	// "name:port".
	Service string
}

// Version is the OpenAPI version of the documents built here.
const Version = "3.0.3"

// Build turns endpoints into a validated OpenAPI 3.0.3 document.
func Build(endpoints []inventory.Endpoint, info Info) (*openapi3.T, error) {
	if info.Title == "" {
		info.Title = "apiwarden discovered API"
	}
	if info.Version == "" {
		info.Version = "1.0.0"
	}
	doc := &openapi3.T{
		OpenAPI: Version,
		Info:    &openapi3.Info{Title: info.Title, Version: info.Version, Description: info.Description},
		Paths:   openapi3.NewPaths(),
		Components: &openapi3.Components{
			SecuritySchemes: openapi3.SecuritySchemes{},
		},
	}
	eps := make([]*inventory.Endpoint, 0, len(endpoints))
	for i := range endpoints {
		if matchService(&endpoints[i].Service, info.Service) {
			eps = append(eps, &endpoints[i])
		}
	}
	// Count services per template+method to find collisions.
	users := map[string]int{}
	for _, e := range eps {
		users[e.Method+" "+e.PathTemplate]++
	}
	tags := map[string]string{}
	opIDs := map[string]int{}
	skipped := 0
	for _, e := range eps {
		if !isOpenAPI30Method(e.Method) {
			skipped++
			continue
		}
		svc := serviceLabel(e.Service)
		tags[svc] = e.Service.Exe
		path := e.PathTemplate
		prefixed := users[e.Method+" "+e.PathTemplate] > 1
		if prefixed {
			path = servicePrefix(e.Service) + strings.TrimSuffix(e.PathTemplate, "/")
			if path == "" {
				path = "/"
			}
		}
		op := operation(e, svc, doc.Components.SecuritySchemes)
		op.OperationID = uniqueID(opIDs, operationID(e.Method, e.PathTemplate, svc))
		if prefixed {
			op.Extensions["x-apiwarden-path"] = e.PathTemplate
		}
		item := doc.Paths.Value(path)
		if item == nil {
			item = &openapi3.PathItem{}
			doc.Paths.Set(path, item)
		}
		item.SetOperation(e.Method, op)
	}
	for _, name := range sortedKeys(tags) {
		desc := tags[name]
		if desc == "" {
			desc = "service with an unknown executable"
		}
		doc.Tags = append(doc.Tags, &openapi3.Tag{Name: name, Description: desc})
	}
	if len(doc.Components.SecuritySchemes) == 0 {
		doc.Components = nil
	}
	// No generation timestamp: the same inventory gives the same bytes,
	// which keeps golden tests and diffs of exports meaningful.
	doc.Extensions = map[string]any{"x-apiwarden-skipped-operations": skipped}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate openapi document: %w", err)
	}
	return doc, nil
}

// JSON renders a document as indented JSON.
func JSON(doc *openapi3.T) ([]byte, error) {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode openapi document: %w", err)
	}
	return b, nil
}

func matchService(s *inventory.Service, filter string) bool {
	if filter == "" {
		return true
	}
	name, port, hasPort := strings.Cut(filter, ":")
	if name != s.Name {
		return false
	}
	return !hasPort || port == strconv.Itoa(int(s.Port))
}

func serviceLabel(s inventory.Service) string {
	return s.Name + ":" + strconv.Itoa(int(s.Port))
}

// servicePrefix is the path prefix that separates colliding operations.
// Service names are executable basenames; characters that would break a
// path segment are replaced.
func servicePrefix(s inventory.Service) string {
	return "/" + sanitize(s.Name, "-") + "-" + strconv.Itoa(int(s.Port))
}

func isOpenAPI30Method(m string) bool {
	switch m {
	case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete,
		http.MethodOptions, http.MethodHead, http.MethodPatch, http.MethodTrace:
		return true
	}
	return false
}

func operation(e *inventory.Endpoint, svc string, schemes openapi3.SecuritySchemes) *openapi3.Operation {
	op := &openapi3.Operation{
		Tags:      []string{svc},
		Summary:   e.Method + " " + e.PathTemplate,
		Responses: openapi3.NewResponses(),
	}
	for _, p := range e.PathParams {
		op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: &openapi3.Parameter{
			Name: p.Name, In: openapi3.ParameterInPath, Required: true,
			Schema: &openapi3.SchemaRef{Value: paramSchema(p)},
		}})
	}
	for _, p := range e.QueryParams {
		op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: &openapi3.Parameter{
			Name: p.Name, In: openapi3.ParameterInQuery, Required: p.Required,
			Schema: &openapi3.SchemaRef{Value: paramSchema(p)},
		}})
	}
	if len(e.RequestContentTypes) > 0 {
		content := openapi3.Content{}
		for _, ct := range sortedKeys(e.RequestContentTypes) {
			mt := &openapi3.MediaType{}
			// The inventory infers one request schema from JSON and form
			// bodies alike.
			if (isJSON(ct) || ct == "application/x-www-form-urlencoded") && e.RequestSchema != nil {
				mt.Schema = &openapi3.SchemaRef{Value: convertSchema(e.RequestSchema)}
			}
			content[ct] = mt
		}
		op.RequestBody = &openapi3.RequestBodyRef{Value: &openapi3.RequestBody{Content: content}}
	}
	// ResponseContentTypes are not split by status: every response lists
	// them, JSON ones with the schema inferred for that status.
	codes := sortedKeys(e.StatusCodes)
	for _, code := range codes {
		if code < 100 || code > 599 {
			continue
		}
		desc := http.StatusText(code)
		if desc == "" {
			desc = "HTTP " + strconv.Itoa(code)
		}
		resp := &openapi3.Response{Description: &desc}
		for _, ct := range sortedKeys(e.ResponseContentTypes) {
			if resp.Content == nil {
				resp.Content = openapi3.Content{}
			}
			mt := &openapi3.MediaType{}
			if s := e.ResponseSchemas[code]; s != nil && isJSON(ct) {
				mt.Schema = &openapi3.SchemaRef{Value: convertSchema(s)}
			}
			resp.Content[ct] = mt
		}
		op.Responses.Set(strconv.Itoa(code), &openapi3.ResponseRef{Value: resp})
	}
	if op.Responses.Len() == 0 {
		desc := "no response observed"
		op.Responses.Set("default", &openapi3.ResponseRef{Value: &openapi3.Response{Description: &desc}})
	}
	op.Security = security(e.AuthSchemes, schemes)

	statusCounts := map[string]uint64{}
	for code, n := range e.StatusCodes {
		statusCounts[strconv.Itoa(code)] = n
	}
	procs := make([]map[string]any, 0, len(e.Processes))
	for _, p := range e.Processes {
		m := map[string]any{"pid": p.PID, "comm": p.Comm, "exe": p.Exe}
		if p.ContainerID != "" {
			m["containerId"] = p.ContainerID
		}
		procs = append(procs, m)
	}
	sensitive := e.Sensitive
	if sensitive == nil {
		sensitive = []string{}
	}
	op.Extensions = map[string]any{
		"x-apiwarden-service":       svc,
		"x-apiwarden-request-count": e.RequestCount,
		"x-apiwarden-first-seen":    e.FirstSeen.UTC().Format(time.RFC3339Nano),
		"x-apiwarden-last-seen":     e.LastSeen.UTC().Format(time.RFC3339Nano),
		"x-apiwarden-status-counts": statusCounts,
		"x-apiwarden-processes":     procs,
		"x-apiwarden-sensitive":     sensitive,
	}
	if e.NoResponse > 0 {
		op.Extensions["x-apiwarden-no-response"] = e.NoResponse
	}
	if len(e.TLS) > 0 {
		tls := map[string]uint64{}
		for k, n := range e.TLS {
			if k == "" {
				k = "plaintext"
			}
			tls[k] += n
		}
		op.Extensions["x-apiwarden-tls"] = tls
	}
	if e.Protocol != "" {
		// http/1.1, h2 or grpc; a gRPC operation is POST /pkg.Service/Method.
		op.Extensions["x-protocol"] = e.Protocol
	}
	if len(e.GRPCStatusCodes) > 0 {
		gs := map[string]uint64{}
		for k, n := range e.GRPCStatusCodes {
			gs[strconv.Itoa(k)] = n
		}
		op.Extensions["x-apiwarden-grpc-status-counts"] = gs
	}
	return op
}

// security registers the schemes behind auth labels and returns the
// operation's alternatives.
func security(auth map[string]uint64, schemes openapi3.SecuritySchemes) *openapi3.SecurityRequirements {
	if len(auth) == 0 {
		return nil
	}
	reqs := openapi3.SecurityRequirements{}
	anonymous := false
	for _, label := range sortedKeys(auth) {
		if label == "none" {
			anonymous = true
			continue
		}
		name, ss := securityScheme(label)
		if ss == nil {
			continue
		}
		schemes[name] = &openapi3.SecuritySchemeRef{Value: ss}
		reqs = append(reqs, openapi3.SecurityRequirement{name: []string{}})
	}
	if anonymous {
		// An empty requirement makes authentication optional.
		reqs = append(reqs, openapi3.SecurityRequirement{})
	}
	return &reqs
}

// securityScheme maps an inventory auth label to a component name and
// scheme; nil for labels OpenAPI cannot describe.
func securityScheme(label string) (string, *openapi3.SecurityScheme) {
	kind, arg, _ := strings.Cut(label, ":")
	switch kind {
	case "bearer-jwt":
		return "bearerJWT", &openapi3.SecurityScheme{Type: "http", Scheme: "bearer", BearerFormat: "JWT"}
	case "bearer":
		return "bearer", &openapi3.SecurityScheme{Type: "http", Scheme: "bearer"}
	case "basic":
		return "basic", &openapi3.SecurityScheme{Type: "http", Scheme: "basic"}
	case "api-key":
		return "apiKey-" + sanitize(arg, "_"), &openapi3.SecurityScheme{Type: "apiKey", In: "header", Name: arg}
	case "cookie":
		return "cookie-" + sanitize(arg, "_"), &openapi3.SecurityScheme{Type: "apiKey", In: "cookie", Name: arg}
	case "query-key":
		return "queryKey-" + sanitize(arg, "_"), &openapi3.SecurityScheme{Type: "apiKey", In: "query", Name: arg}
	case "other", "":
		return "", nil
	}
	// Another Authorization scheme (digest, negotiate, ...).
	return "http-" + sanitize(kind, "_"), &openapi3.SecurityScheme{Type: "http", Scheme: kind}
}

// sanitize keeps characters allowed in component names and path segments.
func sanitize(s, repl string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteString(repl)
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

func operationID(method, tmpl, svc string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(tmpl, "/") {
		seg = strings.Trim(seg, "{}")
		if seg == "" {
			continue
		}
		b.WriteByte('_')
		b.WriteString(sanitize(seg, "_"))
	}
	b.WriteString("__")
	b.WriteString(sanitize(svc, "_"))
	return b.String()
}

func uniqueID(seen map[string]int, id string) string {
	seen[id]++
	if n := seen[id]; n > 1 {
		return id + "_" + strconv.Itoa(n)
	}
	return id
}

func paramSchema(p inventory.Param) *openapi3.Schema {
	typ := p.Type
	if typ == "" {
		typ = "string"
	}
	return &openapi3.Schema{Type: &openapi3.Types{typ}, Format: p.Format}
}

// convertSchema maps an inferred schema to OpenAPI 3.0: "null" becomes
// nullable, an untyped schema stays open, arrays always get items.
func convertSchema(s *inventory.Schema) *openapi3.Schema {
	out := &openapi3.Schema{Format: s.Format, Nullable: s.Nullable}
	switch s.Type {
	case "":
	case "null":
		out.Nullable = true
	default:
		out.Type = &openapi3.Types{s.Type}
	}
	if s.Type == "array" {
		items := &openapi3.Schema{}
		if s.Items != nil {
			items = convertSchema(s.Items)
		}
		out.Items = &openapi3.SchemaRef{Value: items}
	}
	if len(s.Properties) > 0 {
		out.Properties = openapi3.Schemas{}
		for _, k := range sortedKeys(s.Properties) {
			out.Properties[k] = &openapi3.SchemaRef{Value: convertSchema(s.Properties[k])}
		}
		out.Required = slices.Clone(s.Required)
	}
	for _, e := range s.Enum {
		out.Enum = append(out.Enum, e)
	}
	return out
}

func isJSON(ct string) bool {
	return ct == "application/json" || strings.HasSuffix(ct, "+json")
}

func sortedKeys[K interface{ ~int | ~string }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
