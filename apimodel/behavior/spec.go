package behavior

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

// Spec is the set of operations a user's OpenAPI document declares for one
// service, with path templates normalised ("{anything}" -> "{}").
type Spec struct {
	ops map[string]bool // "GET /users/{}" -> deprecated
}

// ParseSpec reads an OpenAPI 3 document (YAML or JSON).
func ParseSpec(data []byte) (*Spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	s := &Spec{ops: map[string]bool{}}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			s.ops[strings.ToUpper(method)+" "+normTemplate(path)] = op.Deprecated
		}
	}
	return s, nil
}

func normTemplate(p string) string {
	segs := strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segs[i] = "{}"
		}
	}
	return "/" + strings.Join(segs, "/")
}

// Has reports whether the spec declares method + template.
func (s *Spec) Has(method, template string) bool {
	ok, _ := s.Lookup(method, template)
	return ok
}

// Lookup reports whether the spec declares method + template and whether
// it marks the operation deprecated.
func (s *Spec) Lookup(method, template string) (found, deprecated bool) {
	deprecated, found = s.ops[strings.ToUpper(method)+" "+normTemplate(template)]
	return found, deprecated
}

// SetSpec installs (or with nil removes) the spec of a service.
func (m *Model) SetSpec(service string, s *Spec) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s == nil {
		delete(m.specs, service)
		return
	}
	m.specs[service] = s
}

// SpecDiff is what the observed inventory and a spec disagree on.
type SpecDiff struct {
	Undocumented     []string // observed, not in the spec (shadow)
	Unobserved       []string // in the spec, never observed
	DeprecatedCalled []string // deprecated in the spec, still called (zombie)
}

// Diff compares a service's observed endpoints with its spec.
func Diff(s *Spec, service string, observed []inventory.Endpoint) SpecDiff {
	var d SpecDiff
	seen := map[string]bool{}
	for _, ep := range observed {
		if ep.Service.Name != service {
			continue
		}
		k := ep.Method + " " + normTemplate(ep.PathTemplate)
		if seen[k] {
			continue
		}
		seen[k] = true
		name := ep.Method + " " + ep.PathTemplate
		dep, ok := s.ops[k]
		switch {
		case !ok:
			d.Undocumented = append(d.Undocumented, name)
		case dep:
			d.DeprecatedCalled = append(d.DeprecatedCalled, name)
		}
	}
	for k := range s.ops {
		if !seen[k] {
			d.Unobserved = append(d.Unobserved, k)
		}
	}
	sort.Strings(d.Undocumented)
	sort.Strings(d.Unobserved)
	sort.Strings(d.DeprecatedCalled)
	return d
}
