package detect

import (
	"hash/fnv"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

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
	// console: "sqli"). "cmdi" and "rce" are one family here.
	Usual []string
}

// Confidence changes applied by adjust.
const (
	// shapeFitPenalty is taken from a finding whose class the parameter
	// usually carries: a rule at 85-94 drops to 65-74, under the block
	// threshold (85) but still reported.
	shapeFitPenalty = 20
	// shapeLowerCeiling: findings at or above it are never lowered. The
	// rules that reach 95 match attack syntax no benign value needs, and
	// an attacker who managed to make a class "usual" for a parameter
	// must still get past them.
	shapeLowerCeiling = 95
	// shapeBreakBonus is added when a value breaks a learned integer,
	// number, uuid, boolean or enum parameter: such a parameter has no
	// reason to carry quotes, spaces or markup, so a rule at 70-84 on it
	// is raised to 85-99.
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
	class = classFamily(class)
	for _, c := range sh.Usual {
		if classFamily(c) == class {
			return true
		}
	}
	return false
}

// classFamily folds the classes that describe one attack: OS command
// rules are split into "rce" (commands) and "cmdi" (shell syntax), and a
// text field that routinely shows one shows the other.
func classFamily(c string) string {
	if c == "cmdi" {
		return "rce"
	}
	return c
}

// lowers reports whether sh lowers a finding of class at confidence conf.
func (sh *Shape) lowers(class string, conf int) bool {
	return !sh.typed() && conf < shapeLowerCeiling && sh.usual(class)
}

// ShapeBreakRule is the rule id of the finding adjust adds when a value
// breaks a learned integer, number, boolean or uuid parameter (not an
// enum) and hits a suspect keyword (SQL, shell, script, file... syntax)
// but no rule.
const ShapeBreakRule = "shape-type-break"

// shapeBreakConfidence is that finding's confidence: the block threshold.
// A typed parameter has no use for attack syntax, and a benign client
// sends what the type says.
const shapeBreakConfidence = 85

// adjust applies the learned shapes to the request's findings. Findings
// without a value (request-level rules) and on the path are left alone.
func (s *scan) adjust(service string) {
	sh := s.d.cfg.Shapes
	if sh == nil {
		return
	}
	s.breaks(service, sh)
	if len(s.findings) == 0 {
		return
	}
	for i := range s.findings {
		f := &s.findings[i]
		v := s.values[i]
		if v == "" || f.Part == "path" {
			continue
		}
		shape, ok := sh.Shape(service, s.req.Method, s.req.Path, f.Part)
		if !ok {
			continue
		}
		switch {
		case shape.typed() && !shape.Fits(strings.TrimSpace(v)):
			f.Confidence = min(100, f.Confidence+shapeBreakBonus)
			s.d.shapeRaised.Add(1)
		case shape.lowers(f.Class, f.Confidence):
			f.Confidence = max(0, f.Confidence-shapeFitPenalty)
			s.d.shapeLowered.Add(1)
		}
	}
}

// breaks adds a ShapeBreakRule finding for each suspect value that breaks
// its parameter's learned type and that no rule reported.
func (s *scan) breaks(service string, sh Shapes) {
next:
	for i, h := range s.suspects {
		for _, g := range s.suspects[:i] {
			if g.part == h.part && g.value == h.value {
				continue next
			}
		}
		for _, f := range s.findings {
			if f.Part == h.part {
				continue next
			}
		}
		shape, ok := sh.Shape(service, s.req.Method, s.req.Path, h.part)
		// Not for enums: a text field that carried few values while it
		// was learned looks like one, and its next benign value should
		// not be blocked for a "--" or a newline.
		if !ok || !shape.typed() || shape.Type == "enum" || shape.Fits(strings.TrimSpace(h.value)) {
			continue
		}
		if len(s.findings) >= s.d.cfg.MaxFindings {
			s.d.findingsDropped.Add(1)
			return
		}
		s.findings = append(s.findings, Finding{
			RuleID: ShapeBreakRule, Class: h.class, Severity: SeverityHigh, Confidence: shapeBreakConfidence,
			Part: h.part, Excerpt: s.excerpt(h.value, 0, h.sensitive),
			Description: "value breaks the learned " + shape.Type + " type of this parameter and carries " + h.class + " syntax",
		})
		// Not adjusted again below: its value is not kept.
		s.values = append(s.values, "")
		s.d.shapeBreaks.Add(1)
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
// from requests the caller trusts (Learn), and serves them as Shapes.
//
// Learned: a parameter's type is used once it has MinSamples values; a
// value of another type in more than 1 % of them makes it a string. A
// class is "usual" for a parameter (findings of it are lowered) only when
// the parameter has UsualMinSamples values, at least 1/usualShare of them
// triggered the class, and those came as UsualMinDistinct distinct values
// from UsualMinClients distinct clients.
//
// Poisoning: Learn ignores every request with a finding at or above
// LearnBelow (before this profiler's own lowering), so a class becomes
// usual only from findings that would not have blocked anyway; findings
// at or above shapeLowerCeiling are never lowered; and many distinct
// values from several clients are needed. Learning can only make a typed
// parameter untyped (back to no raise), never silence a 95.
//
// Memory is bounded: MaxServices services, MaxEndpoints method+path
// templates per service, MaxParams parameters per endpoint and
// MaxTotalParams in all; each parameter keeps at most maxEnum values of
// at most maxEnumLen bytes and maxDistinct hashes per class. When a table
// is full, new entries are refused (counted in Stats) and, at most once
// per sweepEvery refusals, entries still below MinSamples are dropped to
// make room. Past saturateAt learned requests, an endpoint learns from 1
// request in sampleEvery.
//
// Start from NewProfiler: zero bounds are not defaults (a zero LearnBelow
// or MaxServices learns nothing).
type Profiler struct {
	MinSamples       int
	UsualMinSamples  int
	UsualMinDistinct int
	// UsualMinClients is the number of distinct clients whose values must
	// trigger a class; 0 turns the client condition off (the client of a
	// request is then unknown, as in bench/detect).
	UsualMinClients int
	LearnBelow      int
	MaxServices     int
	MaxEndpoints    int
	MaxParams       int
	MaxTotalParams  int

	mu       sync.RWMutex
	services map[string]*svcProfile
	total    int
	stats    ProfilerStats

	// last is what Inspect left for Learn (see lastInspect); collected
	// counts the requests learned from Inspect's walk (tests).
	pendMu    sync.Mutex
	last      lastInspect
	collected atomic.Uint64
}

// ProfilerStats counts the profiler's work.
type ProfilerStats struct {
	Learned   uint64 // requests learned from
	Skipped   uint64 // requests not learned: a finding at or above LearnBelow
	Services  uint64
	Endpoints uint64
	Params    uint64
	// Refused counts services, endpoints or parameters not added because
	// a table was full; Swept counts unlearned entries dropped for room.
	Refused uint64
	Swept   uint64
}

// Defaults of NewProfiler.
const (
	DefaultShapeMinSamples       = 20
	DefaultShapeUsualMinSamples  = 50
	DefaultShapeUsualMinDistinct = 8
	DefaultShapeUsualMinClients  = 3
	DefaultShapeMaxServices      = 256
	DefaultShapeMaxEndpoints     = 2048
	DefaultShapeMaxParams        = 256
	DefaultShapeMaxTotalParams   = 50000
)

const (
	maxEnum     = 8
	maxEnumLen  = 32
	maxDistinct = 16
	// usualShare: a class is usual when >= 1/usualShare of values trigger it.
	usualShare = 5
	// maxKeyLen bounds a path template or a part name the profiler keeps.
	maxKeyLen = 256
	// decayAt halves a parameter's counts, so old traffic fades.
	decayAt    = 1 << 16
	sweepEvery = 1024
	// saturateAt and sampleEvery: see Profiler.sample.
	saturateAt  = 1000
	sampleEvery = 16
)

type svcProfile struct {
	endpoints map[string]*endpointProfile
	refused   int
}

type endpointProfile struct {
	requests int
	seen     atomic.Uint32 // requests offered past saturateAt
	params   map[string]*paramProfile
	refused  int
}

type paramProfile struct {
	n                        int
	ints, nums, bools, uuids int
	values                   []string // up to maxEnum distinct short values
	open                     bool     // more or longer values than an enum keeps
	maxLen                   int
	classes                  []classCount
}

type classCount struct {
	class   string
	n       int
	values  []uint32 // distinct value hashes, up to maxDistinct
	clients []uint32
}

// NewProfiler returns an empty profiler with the default bounds.
func NewProfiler() *Profiler {
	return &Profiler{
		MinSamples: DefaultShapeMinSamples, UsualMinSamples: DefaultShapeUsualMinSamples,
		UsualMinDistinct: DefaultShapeUsualMinDistinct, UsualMinClients: DefaultShapeUsualMinClients,
		LearnBelow: DefaultSecondStageSkip, MaxServices: DefaultShapeMaxServices,
		MaxEndpoints: DefaultShapeMaxEndpoints, MaxParams: DefaultShapeMaxParams,
		MaxTotalParams: DefaultShapeMaxTotalParams,
	}
}

// templatePath replaces id-like segments (numbers, uuids, long hex or
// mixed tokens) with "{}", so /users/42 and /users/7 share a profile.
func templatePath(p string) string {
	if !strings.ContainsAny(p, "0123456789") {
		return p
	}
	return string(appendTemplatePath(make([]byte, 0, len(p)), p))
}

// appendTemplatePath appends templatePath(p) to b without allocating
// (when b has room).
func appendTemplatePath(b []byte, p string) []byte {
	for i := 0; ; i++ {
		j := strings.IndexByte(p, '/')
		s := p
		if j >= 0 {
			s = p[:j]
		}
		if i > 0 {
			b = append(b, '/')
		}
		digits := 0
		for k := 0; k < len(s); k++ {
			if s[k] >= '0' && s[k] <= '9' {
				digits++
			}
		}
		if digits > 0 && (isInt(s) || isUUID(s) || digits*3 >= len(s) || len(s) >= 16) {
			b = append(b, "{}"...)
		} else {
			b = append(b, s...)
		}
		if j < 0 {
			return b
		}
		p = p[j+1:]
	}
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

func endpointKey(method, path string) string { return method + " " + templatePath(path) }

// appendEndpointKey appends endpointKey(method, path) to b.
func appendEndpointKey(b []byte, method, path string) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	return appendTemplatePath(b, path)
}

// Shape implements Shapes.
func (p *Profiler) Shape(service, method, path, part string) (Shape, bool) {
	if p == nil {
		return Shape{}, false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	pp := p.lookup(service, endpointKey(method, path), partKey(part))
	if pp == nil || pp.n < max(1, p.MinSamples) {
		return Shape{}, false
	}
	return pp.shape(p), true
}

func (p *Profiler) lookup(service, ep, part string) *paramProfile {
	sp := p.services[service]
	if sp == nil {
		return nil
	}
	e := sp.endpoints[ep]
	if e == nil {
		return nil
	}
	return e.params[part]
}

func (pp *paramProfile) shape(p *Profiler) Shape {
	sh := Shape{Type: "string", MaxLen: pp.maxLen}
	fits := func(k int) bool { return (pp.n-k)*100 <= pp.n }
	switch {
	case fits(pp.ints):
		sh.Type = "integer"
	case fits(pp.nums):
		sh.Type = "number"
	case fits(pp.bools):
		sh.Type = "boolean"
	case fits(pp.uuids):
		sh.Type = "uuid"
	case !pp.open && len(pp.values) > 0 && pp.n >= 4*len(pp.values):
		sh.Type = "enum"
		sh.Enum = pp.values
	}
	if pp.n < p.UsualMinSamples {
		return sh
	}
	for _, c := range pp.classes {
		if c.n*usualShare >= pp.n && len(c.values) >= p.UsualMinDistinct && len(c.clients) >= p.UsualMinClients {
			sh.Usual = append(sh.Usual, c.class)
		}
	}
	return sh
}

// Learn records the values of req (of service, from client; "" when
// unknown) as normal for their endpoint, with the classes of findings,
// the findings d.Inspect returned for req. A request with a finding at
// or above LearnBelow teaches nothing; it reports whether req was
// learned. Only query, form, JSON, cookie, header and multipart values
// are learned (not the path, which is the endpoint, nor names).
func (p *Profiler) Learn(d *Detector, req *call.Request, service, client string, findings []Finding) bool {
	return p.learn(d, req, service, client, netip.Addr{}, false, findings)
}

// LearnFrom is Learn with the client as an address, formatted only when
// the request is learned.
func (p *Profiler) LearnFrom(d *Detector, req *call.Request, service string, client netip.Addr, findings []Finding) bool {
	return p.learn(d, req, service, "", client, true, findings)
}

func (p *Profiler) learn(d *Detector, req *call.Request, service, client string, addr netip.Addr, fromAddr bool, findings []Finding) bool {
	if req == nil {
		return false
	}
	// The key is built on the stack (or taken from Inspect, which built
	// it already): most requests of a busy endpoint are not sampled and
	// need no string.
	var kb [maxKeyLen + 1]byte
	epb, col, ok := p.take(d, req, service, kb[:0])
	if !ok {
		epb = appendEndpointKey(kb[:0], req.Method, req.Path)
	}
	if len(epb) > maxKeyLen {
		return false
	}
	if !p.sample(service, epb) {
		return false
	}
	ep := string(epb)
	if fromAddr {
		client = addr.String()
	}
	if p.blocks(service, ep, findings) {
		p.mu.Lock()
		p.stats.Skipped++
		p.mu.Unlock()
		return false
	}
	var vals []seen
	if col != nil && col.complete {
		// Inspect collected them: what the walk below would do, the
		// depth limit hits it would count included.
		vals = col.vals
		p.collected.Add(1)
		for i := range vals {
			vals[i].v = decode(vals[i].v, vals[i].plus, d.cfg.MaxDecodePasses)
		}
		if col.depthHits > 0 {
			d.depthLimitHits.Add(uint64(col.depthHits))
		}
	} else {
		s := d.scratch.Get().(*scan)
		s.reset(d, req, d.maskFor(service, req.Path))
		s.learn = func(pr *partRef, raw string, plus bool) {
			if pr.kind&(mustBit(KindPath)|mustBit(KindKey)) != 0 {
				return
			}
			vals = append(vals, seen{part: pr.String(), v: decode(raw, plus, d.cfg.MaxDecodePasses), sensitive: pr.sensitive})
		}
		s.run()
		s.learn = nil
		s.findings = nil
		d.scratch.Put(s)
	}

	clientHash := hash32(client)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Learned++
	e := p.endpoint(service, ep)
	if e == nil {
		return true
	}
	e.requests++
	for _, sv := range vals {
		if pp := p.param(e, partKey(sv.part)); pp != nil {
			pp.add(sv.v, sv.sensitive)
		}
	}
	// A class counts once per part and request, with the value it came from.
	for i, f := range findings {
		k := partKey(f.Part)
		dup := false
		for _, g := range findings[:i] {
			if classFamily(g.Class) == classFamily(f.Class) && partKey(g.Part) == k {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		pp := e.params[k]
		if pp == nil {
			continue
		}
		v := ""
		for _, sv := range vals {
			if sv.part == f.Part {
				v = sv.v
				break
			}
		}
		pp.addClass(classFamily(f.Class), hash32(v), clientHash, client != "")
	}
	return true
}

// seen is one value Learn learns: its part name, its decoded value (raw
// until decoded, with plus telling how).
type seen struct {
	part, v   string
	plus      bool
	sensitive bool
}

// learnSet holds the values of one request Inspect collected for Learn,
// the ones Learn's own walk (learn mode) would produce, in its order:
// Inspect's walk visits the same parts (and the path and names, which are
// not learned), and when it hit no work bound neither would the learn
// walk, which spends less of it. complete is false when it hit one.
type learnSet struct {
	d         *Detector
	req       *call.Request
	service   string
	vals      []seen
	depthHits int
	complete  bool
}

func (l *learnSet) add(p *partRef, raw string, plus, sensitive bool) {
	if p.kind&(mustBit(KindPath)|mustBit(KindKey)) != 0 {
		return
	}
	l.vals = append(l.vals, seen{part: p.String(), v: raw, plus: plus, sensitive: sensitive})
}

// lastInspect is what Inspect left for the Learn call of the request it
// inspected last: the endpoint key it built, and the learnSet when the
// request is due to be sampled.
type lastInspect struct {
	d            *Detector
	req          *call.Request
	service      string
	method, path string
	key          [maxKeyLen + 1]byte
	n            int // len of the key; > maxKeyLen: too long, not kept
	set          *learnSet
}

// willSample returns a learnSet for req when the next sample call for
// its endpoint would walk it (nil otherwise); it changes nothing but the
// key it leaves for Learn.
func (p *Profiler) willSample(d *Detector, req *call.Request, service string) *learnSet {
	var kb [maxKeyLen + 1]byte
	epb := appendEndpointKey(kb[:0], req.Method, req.Path)
	var l *learnSet
	if len(epb) <= maxKeyLen {
		p.mu.RLock()
		next := true
		if sp := p.services[service]; sp != nil {
			if e := sp.endpoints[string(epb)]; e != nil && e.requests >= saturateAt {
				next = (e.seen.Load()+1)%sampleEvery == 0
			}
		}
		p.mu.RUnlock()
		if next {
			l = &learnSet{d: d, req: req, service: service}
		}
	}
	p.pendMu.Lock()
	p.last.d, p.last.req, p.last.service, p.last.set = d, req, service, nil
	p.last.method, p.last.path = req.Method, req.Path
	p.last.n = len(epb)
	if len(epb) <= maxKeyLen {
		copy(p.last.key[:], epb)
	}
	p.pendMu.Unlock()
	return l
}

// stash keeps l, collected by Inspect, for the Learn call of its request.
func (p *Profiler) stash(l *learnSet) {
	p.pendMu.Lock()
	if p.last.req == l.req {
		p.last.set = l
	}
	p.pendMu.Unlock()
}

// take returns, when req is the request Inspect left its key for, that
// key (appended to buf; too long a key comes back as maxKeyLen+1 bytes)
// and its learnSet (nil when none), and ok; ok is false when another
// request was inspected since (or req was changed).
func (p *Profiler) take(d *Detector, req *call.Request, service string, buf []byte) (key []byte, l *learnSet, ok bool) {
	p.pendMu.Lock()
	defer p.pendMu.Unlock()
	last := &p.last
	if last.req != req || last.d != d || last.service != service || last.method != req.Method || last.path != req.Path {
		return nil, nil, false
	}
	if last.n > maxKeyLen {
		key = append(buf, make([]byte, maxKeyLen+1)...)
	} else {
		key = append(buf, last.key[:last.n]...)
	}
	l = last.set
	last.d, last.req, last.set, last.service, last.method, last.path = nil, nil, nil, "", "", ""
	return key, l, true
}

// sample reports whether a request of ep is walked: every one until the
// endpoint has learned from saturateAt requests, then 1 in sampleEvery,
// so a busy endpoint's learning costs little and its shapes still follow
// changes.
func (p *Profiler) sample(service string, ep []byte) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	sp := p.services[service]
	if sp == nil {
		return true
	}
	e := sp.endpoints[string(ep)]
	if e == nil || e.requests < saturateAt {
		return true
	}
	return e.seen.Add(1)%sampleEvery == 0
}

// blocks reports whether findings hold one at or above LearnBelow, with
// this profiler's own lowering undone.
func (p *Profiler) blocks(service, ep string, findings []Finding) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, f := range findings {
		conf := f.Confidence
		if pp := p.lookup(service, ep, partKey(f.Part)); pp != nil && pp.n >= max(1, p.MinSamples) {
			if sh := pp.shape(p); !sh.typed() && sh.usual(f.Class) && conf+shapeFitPenalty < shapeLowerCeiling {
				conf += shapeFitPenalty
			}
		}
		if conf >= p.LearnBelow {
			return true
		}
	}
	return false
}

// endpoint returns the profile of ep of service, creating both within
// bounds; nil when a table is full.
func (p *Profiler) endpoint(service, ep string) *endpointProfile {
	if p.services == nil {
		p.services = map[string]*svcProfile{}
	}
	sp := p.services[service]
	if sp == nil {
		if len(p.services) >= p.MaxServices {
			p.stats.Refused++
			return nil
		}
		sp = &svcProfile{endpoints: map[string]*endpointProfile{}}
		p.services[service] = sp
		p.stats.Services++
	}
	e := sp.endpoints[ep]
	if e != nil {
		return e
	}
	if len(sp.endpoints) >= p.MaxEndpoints {
		p.stats.Refused++
		if sp.refused++; sp.refused%sweepEvery == 0 {
			for k, x := range sp.endpoints {
				if x.requests < p.MinSamples {
					p.total -= len(x.params)
					p.stats.Params -= uint64(len(x.params))
					p.stats.Endpoints--
					p.stats.Swept++
					delete(sp.endpoints, k)
				}
			}
		}
		if len(sp.endpoints) >= p.MaxEndpoints {
			return nil
		}
	}
	e = &endpointProfile{params: map[string]*paramProfile{}}
	sp.endpoints[ep] = e
	p.stats.Endpoints++
	return e
}

func (p *Profiler) param(e *endpointProfile, k string) *paramProfile {
	pp := e.params[k]
	if pp != nil {
		return pp
	}
	if len(k) > maxKeyLen {
		return nil
	}
	if len(e.params) >= p.MaxParams || p.total >= p.MaxTotalParams {
		p.stats.Refused++
		if e.refused++; e.refused%sweepEvery == 0 {
			for k, x := range e.params {
				if x.n < p.MinSamples {
					delete(e.params, k)
					p.total--
					p.stats.Params--
					p.stats.Swept++
				}
			}
		}
		if len(e.params) >= p.MaxParams || p.total >= p.MaxTotalParams {
			return nil
		}
	}
	pp = &paramProfile{}
	e.params[k] = pp
	p.total++
	p.stats.Params++
	return pp
}

// Stats returns the profiler's counters.
func (p *Profiler) Stats() ProfilerStats {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.stats
}

func (pp *paramProfile) add(v string, sensitive bool) {
	if pp.n >= decayAt {
		pp.decay()
	}
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
	if pp.open {
		return
	}
	for _, e := range pp.values {
		if e == v {
			return
		}
	}
	// Secrets are never kept; long or many values make it open.
	if sensitive || len(v) > maxEnumLen || len(pp.values) >= maxEnum {
		pp.open, pp.values = true, nil
		return
	}
	pp.values = append(pp.values, strings.Clone(v))
}

func (pp *paramProfile) decay() {
	pp.n /= 2
	pp.ints /= 2
	pp.nums /= 2
	pp.bools /= 2
	pp.uuids /= 2
	for i := range pp.classes {
		pp.classes[i].n /= 2
	}
}

func (pp *paramProfile) addClass(class string, vh, ch uint32, known bool) {
	var c *classCount
	for i := range pp.classes {
		if pp.classes[i].class == class {
			c = &pp.classes[i]
		}
	}
	if c == nil {
		pp.classes = append(pp.classes, classCount{class: class})
		c = &pp.classes[len(pp.classes)-1]
	}
	c.n++
	c.values = addDistinct(c.values, vh)
	if known {
		c.clients = addDistinct(c.clients, ch)
	}
}

func addDistinct(s []uint32, h uint32) []uint32 {
	if len(s) >= maxDistinct {
		return s
	}
	for _, x := range s {
		if x == h {
			return s
		}
	}
	return append(s, h)
}

func hash32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}
