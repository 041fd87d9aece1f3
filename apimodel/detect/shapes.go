package detect

import (
	"strings"
	"sync"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Shapes tells the detector what a parameter of an endpoint usually
// receives. part is a Finding.Part ("query:id", "json:$.items[0].note").
// The inventory learns types per endpoint; Profiler is the detector's own
// learner of the same knowledge plus the rule classes a parameter's
// benign values routinely trigger.
type Shapes interface {
	Shape(service, method, path, part string) (Shape, bool)
}

// Shape is the learned form of one parameter.
type Shape struct {
	// Type is "integer", "number", "boolean", "uuid", "enum" or "string".
	Type string
	// Enum holds the closed set of values of an "enum" parameter.
	Enum []string
	// MaxLen is the longest value seen.
	MaxLen int
	// Usual lists the rule classes that this parameter's everyday values
	// trigger at low confidence (HTML in a CMS body: "xss"; SQL in a query
	// console: "sqli").
	Usual []string
}

// Confidence changes applied by adjust.
const (
	// shapeFitPenalty is taken from a finding whose class the parameter
	// usually carries: enough to drop a confidence-85 rule under the
	// block threshold, not enough to silence a 95.
	shapeFitPenalty = 20
	// shapeBreakBonus is added when a value breaks a learned integer,
	// uuid, boolean or enum parameter: such a parameter has no reason to
	// carry quotes, spaces or markup.
	shapeBreakBonus = 15
)

// Fits reports whether v has the shape's type (for typed shapes).
func (sh *Shape) Fits(v string) bool {
	switch sh.Type {
	case "integer":
		return isInt(v)
	case "number":
		return isInt(v) || isDecimal(v)
	case "boolean":
		return v == "true" || v == "false" || v == "0" || v == "1"
	case "uuid":
		return isUUID(v)
	case "enum":
		for _, e := range sh.Enum {
			if e == v {
				return true
			}
		}
		return false
	}
	return true
}

func (sh *Shape) typed() bool { return sh.Type != "" && sh.Type != "string" }

func (sh *Shape) usual(class string) bool {
	for _, c := range sh.Usual {
		if c == class {
			return true
		}
	}
	return false
}

// adjust applies the learned shapes to the request's findings.
func (s *scan) adjust(service string) {
	sh := s.d.cfg.Shapes
	if sh == nil || len(s.findings) == 0 {
		return
	}
	for i := range s.findings {
		f := &s.findings[i]
		shape, ok := sh.Shape(service, s.req.Method, s.req.Path, f.Part)
		if !ok {
			continue
		}
		v := s.values[i]
		switch {
		case shape.typed() && !shape.Fits(strings.TrimSpace(v)):
			f.Confidence = min(100, f.Confidence+shapeBreakBonus)
			s.d.shapeRaised.Add(1)
		case !shape.typed() && shape.usual(f.Class):
			f.Confidence = max(0, f.Confidence-shapeFitPenalty)
			s.d.shapeLowered.Add(1)
		}
	}
}

func isInt(v string) bool {
	v = strings.TrimPrefix(v, "-")
	if v == "" || len(v) > 20 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

func isDecimal(v string) bool {
	a, b, ok := strings.Cut(strings.TrimPrefix(v, "-"), ".")
	return ok && isInt(a) && isInt(b)
}

func isUUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := v[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Profiler learns parameter shapes per service, method and path template
// from requests the caller trusts (Learn), and serves them as Shapes. It
// is bounded: MaxParams parameters, maxEnum values per parameter.
type Profiler struct {
	// MinSamples is how many values a parameter needs before its shape is
	// used; Usual classes need to occur in 1/UsualShare of them.
	MinSamples int
	MaxParams  int

	mu     sync.RWMutex
	params map[string]*paramProfile
}

const (
	maxEnum         = 8
	usualShare      = 5 // a class is usual when >= 1/5 of values trigger it
	defaultMinSamp  = 10
	defaultMaxParam = 50000
)

type paramProfile struct {
	n                        int
	ints, nums, bools, uuids int
	values                   []string // up to maxEnum+1 distinct
	maxLen                   int
	classes                  map[string]int
}

// NewProfiler returns an empty profiler with default bounds.
func NewProfiler() *Profiler {
	return &Profiler{MinSamples: defaultMinSamp, MaxParams: defaultMaxParam, params: map[string]*paramProfile{}}
}

// templatePath replaces id-like segments (numbers, uuids, long hex or
// mixed tokens) with "{}", so /users/42 and /users/7 share a profile.
func templatePath(p string) string {
	if !strings.ContainsAny(p, "0123456789") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		digits := 0
		for j := 0; j < len(s); j++ {
			if s[j] >= '0' && s[j] <= '9' {
				digits++
			}
		}
		if digits > 0 && (isInt(s) || isUUID(s) || digits*3 >= len(s) || len(s) >= 16) {
			segs[i] = "{}"
		}
	}
	return strings.Join(segs, "/")
}

// partKey drops array indexes: every element of $.items[] shares a shape.
func partKey(part string) string {
	if strings.IndexByte(part, '[') < 0 {
		return part
	}
	var b strings.Builder
	skip := false
	for i := 0; i < len(part); i++ {
		c := part[i]
		switch {
		case c == '[':
			skip = true
			b.WriteString("[]")
		case c == ']':
			skip = false
		case !skip:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func profileKey(service, method, path, part string) string {
	return service + " " + method + " " + templatePath(path) + " " + partKey(part)
}

// Shape implements Shapes.
func (p *Profiler) Shape(service, method, path, part string) (Shape, bool) {
	p.mu.RLock()
	pp := p.params[profileKey(service, method, path, part)]
	var sh Shape
	ok := pp != nil && pp.n >= p.MinSamples
	if ok {
		sh = pp.shape()
	}
	p.mu.RUnlock()
	return sh, ok
}

func (pp *paramProfile) shape() Shape {
	sh := Shape{Type: "string", MaxLen: pp.maxLen}
	switch {
	case pp.ints == pp.n:
		sh.Type = "integer"
	case pp.nums == pp.n:
		sh.Type = "number"
	case pp.bools == pp.n:
		sh.Type = "boolean"
	case pp.uuids == pp.n:
		sh.Type = "uuid"
	case len(pp.values) <= maxEnum && pp.n >= 4*len(pp.values):
		sh.Type = "enum"
		sh.Enum = pp.values
	}
	for c, k := range pp.classes {
		if k*usualShare >= pp.n {
			sh.Usual = append(sh.Usual, c)
		}
	}
	return sh
}

// Learn records the values of req (of service) as normal for their
// endpoint, and the classes of the findings they trigger. Feed it traffic
// the caller trusts (a warm-up window, or requests no rule blocked):
// whatever it learns lowers confidence later.
func (p *Profiler) Learn(d *Detector, req *call.Request, service string) {
	type seen struct{ part, v string }
	var vals []seen
	s := d.scratch.Get().(*scan)
	s.reset(d, req, d.maskFor(service, req.Path))
	s.learn = func(part, v string) { vals = append(vals, seen{part, v}) }
	s.run()
	s.learn = nil
	findings := s.findings
	s.findings = nil
	d.scratch.Put(s)

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, sv := range vals {
		k := profileKey(service, req.Method, req.Path, sv.part)
		pp := p.params[k]
		if pp == nil {
			if len(p.params) >= p.MaxParams {
				continue
			}
			pp = &paramProfile{}
			p.params[k] = pp
		}
		pp.add(sv.v)
	}
	for _, f := range findings {
		pp := p.params[profileKey(service, req.Method, req.Path, f.Part)]
		if pp == nil {
			continue
		}
		if pp.classes == nil {
			pp.classes = map[string]int{}
		}
		pp.classes[f.Class]++
	}
}

func (pp *paramProfile) add(v string) {
	pp.n++
	pp.maxLen = max(pp.maxLen, len(v))
	switch {
	case isInt(v):
		pp.ints++
		pp.nums++
	case isDecimal(v):
		pp.nums++
	case v == "true" || v == "false":
		pp.bools++
	case isUUID(v):
		pp.uuids++
	}
	if len(pp.values) <= maxEnum && len(v) <= 64 {
		for _, e := range pp.values {
			if e == v {
				return
			}
		}
		pp.values = append(pp.values, v)
	}
}
