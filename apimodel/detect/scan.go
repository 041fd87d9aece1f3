package detect

import (
	"bytes"
	"fmt"
	"github.com/apiwarden/apiwarden/apimodel/asciifold"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// scan is the per-request state, pooled so a request without findings
// allocates little.
type scan struct {
	d        *Detector
	req      *call.Request
	disabled []bool
	findings []Finding
	canon    []byte
	// stamp[i] == gen marks rule i as already considered for this part.
	stamp []uint32
	gen   uint32
	// tries counts anchored attempts per rule in the current part.
	tries     []uint16
	anyAnchor bool
	// fired[i] marks rule i as already reported for this request and part
	// name, so repeated JSON leaves don't flood the output.
	budget, parts, bytes int
	limitHit             bool
	jsonPath             []jsonSeg
	// suspect is set by suspect rules (and any finding): the request goes
	// to the second stage.
	suspect bool
	// values holds, per finding, the decoded value it was found in (for
	// the shape adjustment).
	values []string
	// suspects holds the values with a suspect keyword hit, when shapes
	// are configured (a typed parameter breaking its type with one is a
	// finding, see adjust).
	suspects []suspectHit
	// learn, when set, receives every value instead of the rules
	// (Profiler.Learn walks a request without matching it).
	learn func(p *partRef, raw string, plus bool)
	// graphQLOps of the request, parsed by the first GraphQL check.
	gqlDone  bool
	gqlDocs  []string
	gqlBatch int
	// clean is the clean-value cache of the request's rule mask (nil:
	// none); key is the scratch of its keys. effects counts what makes a
	// value not clean: findings (emitted or not), suspect hits, anchored
	// rules past their try bound.
	clean   *cleanCache
	key     []byte
	effects int
	// part is the scratch partRef of the value being inspected (one at a
	// time), so naming a part allocates nothing.
	part partRef
	// collect, when set, receives what the learn walk would (Inspect of a
	// request the profiler is about to sample, see learnSet); depthHits
	// counts the JSON depth limit hits of the walk.
	collect   *learnSet
	depthHits int
	// hx is the header index of the request, built once for the request
	// checks (see headerIndex).
	hx headerIndex
}

type suspectHit struct {
	part, value, class string
	sensitive          bool
}

// maxSuspects bounds the suspect values kept per request.
const maxSuspects = 16

type jsonSeg struct {
	key string
	idx int // -1 for object keys
}

// partRef names a part lazily: names are built only for findings.
type partRef struct {
	kind   kindMask
	prefix string // "query:", "header:", ...
	name   string // raw name (decoded when shown)
	json   []jsonSeg
	isJSON bool
	// sensitive parts (password, token...) get their excerpt masked.
	sensitive bool
}

// maxPartName bounds the attacker-chosen name in Finding.Part.
const maxPartName = 64

func (p *partRef) String() string {
	if !p.isJSON {
		if p.name == "" {
			return strings.TrimSuffix(p.prefix, ":")
		}
		n := decode(p.name, true, 1)
		if len(n) > maxPartName {
			n = n[:maxPartName] + "…"
		}
		return p.prefix + printable(n)
	}
	var b strings.Builder
	b.WriteString(p.prefix)
	b.WriteByte('$')
	for _, s := range p.json {
		if s.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
			continue
		}
		b.WriteByte('.')
		k := s.key
		if len(k) > maxPartName {
			k = k[:maxPartName] + "…"
		}
		b.WriteString(printable(k))
	}
	return b.String()
}

func (s *scan) reset(d *Detector, req *call.Request, disabled []bool) {
	s.d, s.req, s.disabled = d, req, disabled
	s.findings = nil
	s.gqlDone, s.gqlDocs, s.gqlBatch = false, nil, 0
	s.values = s.values[:0]
	s.suspects = s.suspects[:0]
	s.suspect = false
	s.learn = nil
	s.collect = nil
	s.depthHits = 0
	s.budget = d.cfg.MaxInspectBytes
	s.parts, s.bytes = 0, 0
	s.limitHit = false
	s.jsonPath = s.jsonPath[:0]
	if len(s.stamp) != len(d.rules) {
		s.stamp = make([]uint32, len(d.rules))
		s.tries = make([]uint16, len(d.rules))
		s.gen = 0
	}
	s.anyAnchor = d.anyAnchor
	s.clean = d.cleanFor(disabled)
}

// ref sets the scratch partRef to r and returns it. Callers inspect one
// part at a time: the previous part's ref is not needed once the next
// is named.
func (s *scan) ref(r partRef) *partRef {
	s.part = r
	return &s.part
}

func (s *scan) run() {
	if s.learn == nil {
		s.requestRules()
		s.path()
	}
	s.query(s.req.RawQuery, KindQuery, "query:", "query-name:")
	s.headers()
	s.body()
}

// maxPathSegments bounds the segments inspected one by one.
const maxPathSegments = 32

// path inspects the whole path (traversal spans segments) and then each
// segment alone, since an injection in /items/1 OR 1=1 is only parsed
// as SQL when the segment stands by itself.
func (s *scan) path() {
	pk := mustBit(KindPath)
	p := s.req.Path
	if !s.value(s.ref(partRef{kind: pk, prefix: "path"}), p, false) || s.d.skipInert && inertPath(p) {
		return
	}
	n := 0
	for seg := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
		if seg == "" || inertToken(seg) {
			continue
		}
		if n++; n > maxPathSegments {
			return
		}
		if !s.value(s.ref(partRef{kind: pk, prefix: "path"}), seg, false) {
			return
		}
	}
}

// reqRule is a request rule as the scan runs it: its index and check,
// side by side (not behind the rule's pointer) for the loop every request
// goes through.
type reqRule struct {
	i     int32
	check requestCheckFunc
	gql   graphQLDocCheck
}

func (s *scan) requestRules() {
	var hx *headerIndex
	if !s.d.noHeaderIndex && s.hx.build(s.req.Headers) {
		hx = &s.hx
	}
	for _, rr := range s.d.reqRules {
		if s.disabled[rr.i] {
			continue
		}
		var part, ev string
		var ok bool
		if rr.gql != nil {
			if !s.gqlDone {
				s.gqlDocs, s.gqlBatch = graphQLOps(s.req, hx)
				s.gqlDone = true
			}
			part, ev, ok = rr.gql(s.gqlDocs, s.gqlBatch)
		} else {
			part, ev, ok = rr.check(s.req, hx, &s.d.cfg)
		}
		if ok {
			r := s.d.rules[rr.i]
			if len(ev) > s.d.cfg.MaxExcerpt {
				ev = ev[:s.d.cfg.MaxExcerpt] + "…"
			}
			s.emit(r, printable(part), printable(ev))
		}
	}
	s.gqlDocs = nil // the scan is pooled: keep no request text
}

// value inspects one attacker-controlled string. It returns false once the
// request's work bound is reached so callers stop producing parts.
func (s *scan) value(p *partRef, raw string, plus bool) bool {
	if s.limitHit {
		return false
	}
	if s.parts >= s.d.cfg.MaxParts {
		s.limitHit = true
		s.d.partsLimitHits.Add(1)
		return false
	}
	if raw == "" {
		return true
	}
	if len(raw) > s.budget {
		s.limitHit = true
		s.d.bytesLimitHits.Add(1)
		raw = raw[:s.budget]
		if raw == "" {
			return false
		}
	}
	s.budget -= len(raw)
	s.parts++
	s.bytes += len(raw)
	if s.learn != nil {
		s.learn(p, raw, plus)
		return true
	}
	if s.collect != nil {
		s.collect.add(p, raw, plus, p.sensitive)
	}
	if s.d.skipInert && inertToken(raw) {
		s.tokens(p, raw)
		return true
	}
	cache := s.clean != nil && len(raw) <= maxCleanValue
	if cache {
		s.key = cleanKey(s.key[:0], p.kind, plus, raw)
		if s.clean.has(s.key) {
			s.d.cleanHits.Add(1)
			return !s.limitHit
		}
	}
	effects := s.effects
	s.rules(p, raw, plus)
	if cache && s.effects == effects {
		s.clean.add(s.key)
	}
	return !s.limitHit
}

// rules runs every rule that can match raw, a value of part p.
func (s *scan) rules(p *partRef, raw string, plus bool) {
	decoded := decode(raw, plus, s.d.cfg.MaxDecodePasses)
	s.canon = canonical(s.canon[:0], decoded)
	canon := s.canon
	s.nextGen()
	if s.anyAnchor {
		clear(s.tries)
	}
	var name string
	// Single-byte keywords (quotes, separators) are frequent in prose;
	// a table lookup per byte finds them without the automaton's
	// per-match cost.
	if s.d.hasByteRules {
		for i := 0; i < len(canon); i++ {
			for _, ri := range s.d.byteRules[canon[i]] {
				s.hit(ri, i, p, &name, decoded, canon)
			}
		}
	}
	for _, m := range s.d.ac.find(canon) {
		for _, ri := range s.d.patRules[m.PatternID] {
			s.hit(ri, m.Start, p, &name, decoded, canon)
		}
	}
	for b := 0; b < len(s.d.always); b++ {
		if p.kind&(1<<b) == 0 {
			continue
		}
		for _, ri := range s.d.always[b] {
			if s.stamp[ri] == s.gen {
				continue
			}
			s.stamp[ri] = s.gen
			s.evaluate(ri, p, &name, decoded, canon)
		}
	}
}

// nextGen starts a new value: rule stamps of earlier values no longer
// count (cleared when the generation counter wraps).
func (s *scan) nextGen() {
	s.gen++
	if s.gen == 0 {
		clear(s.stamp)
		s.gen = 1
	}
}

// tokens matches the Tokens rules' keywords on a single-token value or a
// plain name, which the full pass skips.
func (s *scan) tokens(p *partRef, raw string) {
	if s.d.tokAC.count() == 0 || s.learn != nil {
		return
	}
	s.canon = canonical(s.canon[:0], raw)
	canon := s.canon
	s.nextGen()
	var name string
	for _, m := range s.d.tokAC.find(canon) {
		for _, ri := range s.d.tokPatRules[m.PatternID] {
			if s.d.rules[ri].Anchor {
				continue
			}
			s.hit(ri, m.Start, p, &name, raw, canon)
		}
	}
}

// name inspects a parameter, cookie or header name: unusual names go
// through every key rule, plain ones only through the token rules.
func (s *scan) name(prefix, name string) bool {
	p := s.ref(partRef{kind: mustBit(KindKey), prefix: prefix, name: name})
	if !plainName(name) {
		return s.value(p, name, true)
	}
	if len(name) > 3 {
		s.tokens(p, name)
	}
	return true
}

// hit handles a keyword of rule ri found at canon[at:].
func (s *scan) hit(ri int32, at int, p *partRef, name *string, decoded string, canon []byte) {
	if s.stamp[ri] == s.gen {
		return
	}
	r := s.d.rules[ri]
	if r.kinds&p.kind == 0 || s.disabled[ri] {
		s.stamp[ri] = s.gen
		return
	}
	if r.Suspect {
		s.stamp[ri] = s.gen
		s.suspect = true
		s.effects++
		if s.d.cfg.Shapes != nil && len(s.suspects) < maxSuspects && p.kind&(mustBit(KindPath)|mustBit(KindKey)) == 0 {
			if *name == "" {
				*name = p.String()
			}
			s.suspects = append(s.suspects, suspectHit{part: *name, value: decoded, class: r.Class, sensitive: p.sensitive})
		}
		return
	}
	if !r.Anchor {
		s.stamp[ri] = s.gen
		s.evaluate(ri, p, name, decoded, canon)
		return
	}
	s.tries[ri]++
	if s.tries[ri] > maxAnchorTries {
		// Past the bound, one unanchored run over the whole value: its
		// cost is bounded too, and padding a payload with separators
		// does not hide it.
		s.stamp[ri] = s.gen
		s.d.anchorLimitHits.Add(1)
		s.effects++
		s.evaluateUnanchored(ri, p, name, decoded, canon)
		return
	}
	if s.evaluateAt(ri, p, name, decoded, canon, at) {
		s.stamp[ri] = s.gen
	}
}

// evaluateUnanchored runs an anchored rule's pattern at every position of
// the value (its unanchored twin), for values with more keyword hits than
// maxAnchorTries.
func (s *scan) evaluateUnanchored(ri int32, p *partRef, name *string, decoded string, canon []byte) {
	r := s.d.rules[ri]
	if m := r.reFree.FindIndex(canon); m != nil {
		s.confirm(r, p, name, decoded, canon, m[0])
	}
}

// confirm runs an anchored rule's check on a regex match at loc and
// emits the finding; it reports whether it did.
func (s *scan) confirm(r *rule, p *partRef, name *string, decoded string, canon []byte, loc int) bool {
	if r.check != nil && !r.check(decoded, canon) {
		return false
	}
	if *name == "" {
		*name = p.String()
	}
	s.emitValue(r, *name, s.excerpt(decoded, loc, p.sensitive), decoded)
	return true
}

// maxAnchorTries bounds anchored regex attempts per rule and part, so a
// value made of separators cannot make one rule quadratic.
const maxAnchorTries = 64

// anchorWindow is the most an anchored pattern may span.
const anchorWindow = 64

// evaluateAt runs an anchored rule at one keyword position and reports
// whether it matched (and was emitted).
func (s *scan) evaluateAt(ri int32, p *partRef, name *string, decoded string, canon []byte, at int) bool {
	r := s.d.rules[ri]
	// Anchored patterns are local: a window keeps each attempt's cost
	// independent of the value's length (Go's backtracker clears state
	// proportional to its input).
	if r.gate != nil && !r.gate(canon, at) {
		return false
	}
	if !r.re.Match(canon[at:min(len(canon), at+anchorWindow)]) {
		return false
	}
	return s.confirm(r, p, name, decoded, canon, at)
}

func (s *scan) evaluate(ri int32, p *partRef, name *string, decoded string, canon []byte) {
	r := s.d.rules[ri]
	if r.kinds&p.kind == 0 || s.disabled[ri] {
		return
	}
	// A keyword-less rule's check is its gate: run it before the regex.
	gated := r.always && r.check != nil
	if gated && !r.check(decoded, canon) {
		return
	}
	loc := -1
	if r.re != nil {
		if r.Needs != "" && !containsAnyByte(decoded, canon, r.decoded, r.Needs) {
			return
		}
		var m []int
		if r.decoded {
			m = r.re.FindStringIndex(decoded)
		} else {
			m = r.re.FindIndex(canon)
		}
		if m == nil {
			return
		}
		loc = m[0]
	}
	if !gated && r.check != nil && !r.check(decoded, canon) {
		return
	}
	if *name == "" {
		*name = p.String()
	}
	s.emitValue(r, *name, s.excerpt(decoded, loc, p.sensitive), decoded)
}

func (s *scan) emit(r *rule, part, excerpt string) { s.emitValue(r, part, excerpt, "") }

func (s *scan) emitValue(r *rule, part, excerpt, value string) {
	s.effects++
	for i := range s.findings {
		// A path is seen whole and per segment: report a rule once.
		if s.findings[i].RuleID == r.ID && s.findings[i].Part == part {
			return
		}
	}
	if len(s.findings) >= s.d.cfg.MaxFindings {
		s.d.findingsDropped.Add(1)
		return
	}
	conf := r.Confidence
	if (r.Class == "rce" || r.Class == "cmdi") && value != "" && markdownProse(value) {
		// A command in a markdown code span of a sentence is text about
		// a command (issue trackers, chat, LLM prompts): below the block
		// threshold, still reported.
		conf -= proseDemotion
		s.d.proseLowered.Add(1)
	}
	if r.Class == "sqli" && value != "" && sqlCodeProse(value) {
		// "What does `SELECT ...` return?": a whole statement quoted as
		// code in a question, not a fragment continuing a query.
		conf -= proseDemotion
		s.d.proseLowered.Add(1)
	}
	if r.Class == "xss" && value != "" && markupProse(value) {
		// A bare tag named in a sentence ("what the <script> tag does")
		// with nothing after it that could run: text about HTML.
		conf -= proseDemotion
		s.d.proseLowered.Add(1)
	}
	s.findings = append(s.findings, Finding{
		RuleID: r.ID, Class: r.Class, Severity: r.severity, Confidence: conf,
		Part: part, Excerpt: excerpt, Description: r.Description,
	})
	s.values = append(s.values, value)
}

var reSecret = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|(?i:bearer\s+)[A-Za-z0-9._~+/=-]{8,}|[A-Za-z0-9+/_-]{32,}={0,2}|(?i:(?:password|passwd|pwd|secret|token|api_?key)=)[^&\s]+`)

// excerpt shows the decoded payload around the match, truncated, with
// JWTs, bearer tokens and long opaque strings redacted and control
// characters escaped. Values of sensitive parts (passwords, tokens,
// sessions) are never shown.
func (s *scan) excerpt(decoded string, loc int, sensitive bool) string {
	if sensitive {
		return "[redacted]"
	}
	max := s.d.cfg.MaxExcerpt
	start := 0
	if loc > max/3 && loc < len(decoded) {
		start = loc - max/3
	}
	end := min(start+max, len(decoded))
	ex := reSecret.ReplaceAllString(printable(decoded[start:end]), "[redacted]")
	if start > 0 {
		ex = "…" + ex
	}
	if end < len(decoded) {
		ex += "…"
	}
	return ex
}

// printable escapes control characters so evidence cannot forge log
// lines, and drops invalid UTF-8 (e.g. a cut multi-byte rune).
func printable(v string) string {
	v = strings.ToValidUTF8(v, "")
	if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return v
	}
	var b strings.Builder
	for _, r := range v {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isSensitiveName(n string) bool {
	// One pass: at each byte, only the words starting with its letter
	// (c|0x20 is a lower-case letter only for that letter's two cases).
	for i := 0; i < len(n); i++ {
		var ws []string
		switch n[i] | 0x20 {
		case 'p':
			ws = sensitiveP
		case 's':
			ws = sensitiveS
		case 't':
			ws = sensitiveT
		case 'a':
			ws = sensitiveA
		case 'c':
			ws = sensitiveC
		default:
			continue
		}
		for _, w := range ws {
			if asciifold.HasPrefix(n[i:], w) {
				return true
			}
		}
	}
	return false
}

// The sensitiveWords by first letter.
var (
	sensitiveP = []string{"pass", "pwd"}
	sensitiveS = []string{"secret", "session"}
	sensitiveT = []string{"token"}
	sensitiveA = []string{"apikey", "api_key", "auth"}
	sensitiveC = []string{"credential"}
)

var sensitiveWords = []string{"pass", "pwd", "secret", "token", "apikey", "api_key", "session", "auth", "credential"}

// inertPath is inertToken of the path without its slashes.
func inertPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c != '/' && !inertByte(c) {
			return false
		}
	}
	return true
}

// lowerHeaderName is strings.ToLower(strings.TrimSpace(name)) without an
// allocation for the header names clients send in their usual spelling.
func lowerHeaderName(name string) string {
	if l, ok := commonHeaderLower[name]; ok {
		return l
	}
	return strings.ToLower(strings.TrimSpace(name))
}

// commonHeaderLower maps the usual spellings of frequent header names to
// their lower-case form.
var commonHeaderLower = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"host", "user-agent", "accept", "accept-encoding", "accept-language",
		"content-type", "content-length", "connection", "cookie", "authorization", "cache-control",
		"pragma", "referer", "origin", "x-request-id", "x-forwarded-for", "x-forwarded-proto",
		"x-forwarded-host", "x-real-ip", "x-api-key", "x-requested-with", "x-correlation-id",
		"if-modified-since", "if-none-match", "upgrade", "te", "keep-alive", "transfer-encoding",
		"date", "expect", "content-encoding", "sec-fetch-mode", "sec-fetch-site", "sec-fetch-dest",
		"sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform", "dnt", "priority", "traceparent", "tracestate"} {
		m[n] = n
		m[textproto.CanonicalMIMEHeaderKey(n)] = n
		m[strings.ToUpper(n)] = n
	}
	return m
}()

// inertToken reports whether a value is one token of letters, digits and
// _ . @ : - (ids, numbers, enums, e-mail addresses, UUIDs). No rule can
// match such a value: every payload needs a space, quote, bracket, slash,
// '$', '%' or another separator. Skipping them keeps large JSON cheap.
func inertToken(v string) bool {
	for i := 0; i < len(v); i++ {
		if !inertByte(v[i]) {
			return false
		}
	}
	return true
}

func inertByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '@' || c == ':' || c == '-'
}

// plainName reports whether a parameter name is a simple identifier; only
// other names (user[$ne], a%0d%0a...) are inspected as keys.
func plainName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func (s *scan) query(raw, kind, prefix, namePrefix string) {
	kb := mustBit(kind)
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		name, val, _ := strings.Cut(pair, "=")
		if !s.name(namePrefix, name) {
			return
		}
		if !s.value(s.ref(partRef{kind: kb, prefix: prefix, name: name, sensitive: isSensitiveName(name)}), val, true) {
			return
		}
	}
}

// skipHeaders are not inspected as values: framing (judged by the request
// rules), negotiation lists full of ';' and '*', and credentials.
var skipHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"accept": true, "accept-encoding": true, "content-type": true, "cookie": true,
	"authorization": true, "proxy-authorization": true, "cache-control": true, "pragma": true,
	"upgrade": true, "te": true, "keep-alive": true, "if-modified-since": true, "if-none-match": true,
	"content-encoding": true, "accept-language": true, "date": true, "expect": true,
	"sec-fetch-mode": true, "sec-fetch-site": true, "sec-fetch-dest": true, "sec-fetch-user": true,
	"sec-ch-ua": true, "sec-ch-ua-mobile": true, "sec-ch-ua-platform": true, "priority": true,
	"upgrade-insecure-requests": true, "dnt": true, "traceparent": true, "tracestate": true,
}

// knownHeaders are standard names not worth matching as names.
var knownHeaders = map[string]bool{
	"user-agent": true, "referer": true, "origin": true, "x-request-id": true, "x-forwarded-for": true,
	"x-forwarded-proto": true, "x-forwarded-host": true, "x-real-ip": true, "x-api-key": true,
	"x-requested-with": true, "x-correlation-id": true, "x-amz-date": true, "x-amz-content-sha256": true,
}

// headerInfo is what headers needs of a header name: its lower-case
// form and whether skipHeaders and knownHeaders hold it.
type headerInfo struct {
	lower       string
	skip, known bool
}

// commonHeaderInfo is headerInfo by the usual spellings of frequent
// header names (the keys of commonHeaderLower): one lookup per header
// instead of three.
var commonHeaderInfo = func() map[string]headerInfo {
	m := make(map[string]headerInfo, len(commonHeaderLower))
	for n, l := range commonHeaderLower {
		m[n] = headerInfo{lower: l, skip: skipHeaders[l], known: knownHeaders[l]}
	}
	return m
}()

func lookupHeader(name string) headerInfo {
	if hi, ok := commonHeaderInfo[name]; ok {
		return hi
	}
	l := strings.ToLower(strings.TrimSpace(name))
	return headerInfo{lower: l, skip: skipHeaders[l], known: knownHeaders[l]}
}

func (s *scan) headers() {
	hk := mustBit(KindHeader)
	for _, h := range s.req.Headers {
		hi := lookupHeader(h.Name)
		ln := hi.lower
		if ln == "cookie" {
			s.cookies(h.Value)
			continue
		}
		if hi.skip {
			continue
		}
		if !hi.known && !s.name("header-name:", h.Name) {
			return
		}
		if !s.value(s.ref(partRef{kind: hk, prefix: "header:", name: h.Name, sensitive: isSensitiveName(ln)}), h.Value, false) {
			return
		}
	}
}

func (s *scan) cookies(v string) {
	ck := mustBit(KindCookie)
	for v != "" {
		var pair string
		pair, v, _ = strings.Cut(v, ";")
		name, val, _ := strings.Cut(strings.TrimSpace(pair), "=")
		if !s.name("cookie-name:", name) {
			return
		}
		// Cookies are often form-encoded, so '+' is a space.
		if !s.value(s.ref(partRef{kind: ck, prefix: "cookie:", name: name, sensitive: isSensitiveName(name)}), val, true) {
			return
		}
	}
}

func (s *scan) body() {
	body := s.req.Body
	if len(body) == 0 {
		return
	}
	mt, params, _ := mime.ParseMediaType(s.req.Headers.Get("Content-Type"))
	mt = strings.ToLower(mt)
	switch {
	case mt == "application/x-www-form-urlencoded":
		s.query(string(body), KindForm, "form:", "form-name:")
		return
	case mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "" && looksJSON(body):
		w := jsonWalker{s: s, data: body}
		if w.walk() {
			return
		}
		// Not valid JSON (or cut short): inspect it as text so a broken
		// document cannot hide a payload.
	case strings.HasPrefix(mt, "multipart/"):
		if s.multipart(body, params["boundary"]) {
			return
		}
	case strings.HasSuffix(mt, "/xml") || strings.HasSuffix(mt, "+xml"):
		s.xmlText(body)
	case mt == "" && looksForm(body):
		// No Content-Type: PHP-style and WAF body parsers (Coraza's
		// default) read such a body as a form, so a payload in a field
		// name or value must be judged as one; the raw text follows.
		s.query(string(body), KindForm, "form:", "form-name:")
	}
	s.value(s.ref(partRef{kind: mustBit(KindBody), prefix: "body"}), string(body), false)
}

// looksForm reports whether a body without a Content-Type reads as
// URL-encoded fields: one line whose first '=' (or its end) ends a
// name without blanks.
func looksForm(b []byte) bool {
	if bytes.IndexAny(b, "\r\n") >= 0 {
		return false
	}
	i := bytes.IndexByte(b, '=')
	if i < 0 {
		// A lone field name, as in "pay%3Dor+1%3D1".
		i = len(b)
	}
	return i > 0 && bytes.IndexAny(b[:i], " \t") < 0
}

func looksJSON(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// multipart inspects the text fields and file names; file contents are
// not scanned. It returns false when the body is not valid multipart.
func (s *scan) multipart(body []byte, boundary string) bool {
	if boundary == "" {
		return false
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	mk := mustBit(KindMultipart)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return s.parts > 0
		}
		name := p.FormName()
		if !s.name("multipart-name:", name) {
			return true
		}
		if fn := p.FileName(); fn != "" || p.Header.Get("Content-Disposition") != "" && strings.Contains(p.Header.Get("Content-Disposition"), "filename") {
			raw := p.Header.Get("Content-Disposition")
			if !s.value(s.ref(partRef{kind: mk, prefix: "multipart:", name: name + ".filename"}), filenameParam(raw), false) {
				return true
			}
			ct := p.Header.Get("Content-Type")
			if !strings.Contains(ct, "xml") && !strings.HasPrefix(ct, "text/") {
				continue
			}
		}
		buf := make([]byte, min(s.budget+1, 1<<20))
		n, _ := io.ReadFull(p, buf)
		if !s.value(s.ref(partRef{kind: mk, prefix: "multipart:", name: name}), string(buf[:n]), false) {
			return true
		}
	}
}

// filenameParam returns the raw filename parameter; mime's parser would
// strip the directory part, which is exactly the traversal evidence.
func filenameParam(cd string) string {
	i := strings.Index(strings.ToLower(cd), "filename=")
	if i < 0 {
		return ""
	}
	v := cd[i+len("filename="):]
	if strings.HasPrefix(v, `"`) {
		v = v[1:]
		if j := strings.IndexByte(v, '"'); j >= 0 {
			v = v[:j]
		}
		return v
	}
	if j := strings.IndexByte(v, ';'); j >= 0 {
		v = v[:j]
	}
	return strings.TrimSpace(v)
}

// jsonWalker visits every string leaf and every unusual key of a JSON
// document without building it: one pass, no reflection, and it stops at
// the work bound.
type jsonWalker struct {
	s     *scan
	data  []byte
	pos   int
	depth int
	buf   []byte
	stop  bool
}

func (w *jsonWalker) walk() bool {
	w.ws()
	if !w.val() {
		return false
	}
	w.ws()
	return w.pos == len(w.data) || w.stop
}

func (w *jsonWalker) ws() {
	for w.pos < len(w.data) {
		switch w.data[w.pos] {
		case ' ', '\t', '\r', '\n':
			w.pos++
		default:
			return
		}
	}
}

func (w *jsonWalker) val() bool {
	if w.pos >= len(w.data) {
		return false
	}
	switch c := w.data[w.pos]; {
	case (c == '{' || c == '[') && w.depth >= w.s.d.cfg.MaxJSONDepth:
		w.s.d.depthLimitHits.Add(1)
		w.s.depthHits++
		return w.skipComposite()
	case c == '{':
		return w.object()
	case c == '[':
		return w.array()
	case c == '"':
		str, ok := w.str()
		if !ok {
			return false
		}
		if !w.stop && !w.s.value(w.s.ref(partRef{kind: mustBit(KindJSON), prefix: "json:", json: w.s.jsonPath, isJSON: true, sensitive: w.sensitive()}), str, false) {
			w.stop = true
		}
		return true
	default:
		// number, true, false, null: nothing an attacker can inject,
		// but the profiler learns a field's type from them.
		start := w.pos
		for w.pos < len(w.data) {
			c := w.data[w.pos]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t' {
				break
			}
			w.pos++
		}
		if w.s.learn != nil && !w.stop {
			if lit := string(w.data[start:w.pos]); lit != "null" {
				w.s.learn(&partRef{kind: mustBit(KindJSON), prefix: "json:", json: w.s.jsonPath, isJSON: true}, lit, false)
			}
		} else if w.s.collect != nil && !w.stop {
			if lit := string(w.data[start:w.pos]); lit != "null" {
				w.s.collect.add(&partRef{kind: mustBit(KindJSON), prefix: "json:", json: w.s.jsonPath, isJSON: true}, lit, false, false)
			}
		}
		return true
	}
}

func (w *jsonWalker) sensitive() bool {
	p := w.s.jsonPath
	return len(p) > 0 && p[len(p)-1].idx < 0 && isSensitiveName(p[len(p)-1].key)
}

// skipComposite steps over a too-deep object or array without recursion,
// so nesting depth cannot grow the stack.
func (w *jsonWalker) skipComposite() bool {
	depth := 0
	for w.pos < len(w.data) {
		switch w.data[w.pos] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				w.pos++
				return true
			}
		case '"':
			if _, ok := w.str(); !ok {
				return false
			}
			continue
		}
		w.pos++
	}
	return false
}

func (w *jsonWalker) object() bool {
	w.pos++ // {
	w.depth++
	defer func() { w.depth-- }()
	w.ws()
	if w.pos < len(w.data) && w.data[w.pos] == '}' {
		w.pos++
		return true
	}
	for {
		w.ws()
		if w.pos >= len(w.data) || w.data[w.pos] != '"' {
			return false
		}
		key, ok := w.str()
		if !ok {
			return false
		}
		w.ws()
		if w.pos >= len(w.data) || w.data[w.pos] != ':' {
			return false
		}
		w.pos++
		w.ws()
		w.s.jsonPath = append(w.s.jsonPath, jsonSeg{key: key, idx: -1})
		if !w.stop {
			kp := w.s.ref(partRef{kind: mustBit(KindKey), prefix: "json-key:", json: w.s.jsonPath, isJSON: true})
			if !plainName(key) {
				if !w.s.value(kp, key, false) {
					w.stop = true
				}
			} else if len(key) > 3 {
				w.s.tokens(kp, key)
			}
		}
		ok = w.val()
		w.s.jsonPath = w.s.jsonPath[:len(w.s.jsonPath)-1]
		if !ok {
			return false
		}
		w.ws()
		if w.pos >= len(w.data) {
			return false
		}
		switch w.data[w.pos] {
		case ',':
			w.pos++
		case '}':
			w.pos++
			return true
		default:
			return false
		}
	}
}

func (w *jsonWalker) array() bool {
	w.pos++ // [
	w.depth++
	defer func() { w.depth-- }()
	w.ws()
	if w.pos < len(w.data) && w.data[w.pos] == ']' {
		w.pos++
		return true
	}
	for i := 0; ; i++ {
		w.ws()
		w.s.jsonPath = append(w.s.jsonPath, jsonSeg{idx: i})
		ok := w.val()
		w.s.jsonPath = w.s.jsonPath[:len(w.s.jsonPath)-1]
		if !ok {
			return false
		}
		w.ws()
		if w.pos >= len(w.data) {
			return false
		}
		switch w.data[w.pos] {
		case ',':
			w.pos++
		case ']':
			w.pos++
			return true
		default:
			return false
		}
	}
}

// str reads a JSON string at w.pos, decoding escapes. Strings without
// escapes are returned as a copy of the input slice only.
func (w *jsonWalker) str() (string, bool) {
	w.pos++ // opening quote
	start := w.pos
	for w.pos < len(w.data) {
		c := w.data[w.pos]
		if c == '"' {
			s := string(w.data[start:w.pos])
			w.pos++
			return s, true
		}
		if c == '\\' {
			break
		}
		w.pos++
	}
	if w.pos >= len(w.data) {
		return "", false
	}
	w.buf = append(w.buf[:0], w.data[start:w.pos]...)
	for w.pos < len(w.data) {
		c := w.data[w.pos]
		switch {
		case c == '"':
			w.pos++
			return string(w.buf), true
		case c == '\\' && w.pos+1 < len(w.data):
			e := w.data[w.pos+1]
			w.pos += 2
			switch e {
			case 'n':
				w.buf = append(w.buf, '\n')
			case 'r':
				w.buf = append(w.buf, '\r')
			case 't':
				w.buf = append(w.buf, '\t')
			case 'b':
				w.buf = append(w.buf, '\b')
			case 'f':
				w.buf = append(w.buf, '\f')
			case 'u':
				r, ok := hexRune(string(w.data[w.pos:min(w.pos+4, len(w.data))]), 0, 4)
				if !ok {
					return "", false
				}
				w.pos += 4
				if r >= 0xd800 && r < 0xdc00 && w.pos+6 <= len(w.data) && w.data[w.pos] == '\\' && w.data[w.pos+1] == 'u' {
					if lo, ok := hexRune(string(w.data[w.pos+2:w.pos+6]), 0, 4); ok && lo >= 0xdc00 && lo < 0xe000 {
						r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
						w.pos += 6
					}
				}
				w.buf = appendRune(w.buf, r)
			default:
				w.buf = append(w.buf, e)
			}
		default:
			w.buf = append(w.buf, c)
			w.pos++
		}
	}
	return "", false
}

func appendRune(b []byte, r rune) []byte {
	return append(b, string(r)...)
}

// containsAnyByte reports whether the form of the value a rule's regex
// runs on holds one of the bytes of set.
func containsAnyByte(decoded string, canon []byte, useDecoded bool, set string) bool {
	if useDecoded {
		return strings.ContainsAny(decoded, set)
	}
	return bytes.ContainsAny(canon, set)
}

// proseDemotion is what a shell finding inside markdown prose loses.
const proseDemotion = 20

// markdownProse reports whether v is natural-language text whose shell
// words sit in markdown code spans or fences: backtick spans that open
// after a blank or punctuation and close before one, at least five words
// outside them or a fenced block with a language tag, and no pipe, '&&' or
// '$(' outside them.
func markdownProse(v string) bool {
	if strings.IndexByte(v, '`') < 0 || len(v) > 64<<10 {
		return false
	}
	words, inWord := 0, 0
	fenced := false
	for i := 0; i < len(v); {
		c := v[i]
		if c == '`' {
			n := 1
			for i+n < len(v) && v[i+n] == '`' {
				n++
			}
			if i > 0 && !spanEdge(v[i-1]) {
				return false
			}
			end := strings.Index(v[i+n:], v[i:i+n])
			if end < 0 {
				return false
			}
			if n >= 3 && langFence(v[i+n:i+n+end]) {
				fenced = true
			}
			i += n + end + n
			if i < len(v) && !spanEdge(v[i]) {
				return false
			}
			inWord = 0
			continue
		}
		switch {
		case c == '|' || c == '&' && i+1 < len(v) && v[i+1] == '&' || c == '$' && i+1 < len(v) && v[i+1] == '(':
			return false
		case c|0x20 >= 'a' && c|0x20 <= 'z' || c >= 0x80:
			inWord++
			if inWord == 2 {
				words++
			}
		default:
			inWord = 0
		}
		i++
	}
	return words >= 5 || fenced
}

// langFence reports whether the inside of a ``` fence starts with a
// language tag on its own line (```bash\n): a code block shown as code.
func langFence(in string) bool {
	j := 0
	for j < len(in) && j < 16 && (in[j] >= 'a' && in[j] <= 'z' || in[j] >= '0' && in[j] <= '9' || in[j] == '-' || in[j] == '+') {
		j++
	}
	return j > 0 && j < len(in) && in[j] == '\n' && strings.HasSuffix(in, "\n")
}

func spanEdge(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '(' || c == ')' || c == ',' || c == '.' ||
		c == ':' || c == ';' || c == '!' || c == '?' || c == '"' || c == '\'' || c == '*' || c == '_'
}

// markupProse reports whether v is natural-language text that only names
// HTML tags: every '<' opens a bare tag without attributes (<script>,
// </b>), no byte that script needs to do anything (a call, a tagged
// template, an assignment, an entity or escape, a block or index)
// occurs anywhere, and at least five words surround the tags.
func markupProse(v string) bool {
	if len(v) > 64<<10 || strings.ContainsAny(v, "(`=&\\%{[") || !strings.ContainsAny(v, " \t\n") {
		// Text has blanks between its words: a value without any
		// (data:text/html;base64,...) is a token, not a sentence.
		return false
	}
	words, inWord := 0, 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '<' {
			j := i + 1
			if j < len(v) && v[j] == '/' {
				j++
			}
			k := j
			for k < len(v) && k-j < 10 && (v[k]|0x20 >= 'a' && v[k]|0x20 <= 'z') {
				k++
			}
			if k == j || k >= len(v) || v[k] != '>' {
				return false
			}
			i, inWord = k, 0
			continue
		}
		if c == '>' {
			return false
		}
		if c|0x20 >= 'a' && c|0x20 <= 'z' || c >= 0x80 {
			inWord++
			if inWord == 2 {
				words++
			}
		} else {
			inWord = 0
		}
	}
	return words >= 5
}

// sqlCodeProse reports whether v is a sentence that quotes whole SQL
// statements in markdown code spans: every span opens after a blank or
// punctuation, closes before one and starts with a statement verb; the
// text outside has at least two words and nothing that could end a
// literal or continue a query (quote other than an apostrophe inside a
// word, ';', comment, '=', SQL-only words).
func sqlCodeProse(v string) bool {
	if strings.IndexByte(v, '`') < 0 || len(v) > 64<<10 {
		return false
	}
	var out strings.Builder
	spans := 0
	for i := 0; i < len(v); {
		if v[i] != '`' {
			out.WriteByte(v[i])
			i++
			continue
		}
		if i > 0 && !spanEdge(v[i-1]) {
			return false
		}
		end := strings.IndexByte(v[i+1:], '`')
		if end < 0 {
			return false
		}
		code := strings.TrimLeft(v[i+1:i+1+end], " \t\n")
		if !sqlStatementStart.MatchString(code) {
			return false
		}
		spans++
		i += end + 2
		if i < len(v) && !spanEdge(v[i]) {
			return false
		}
		out.WriteByte(' ')
	}
	o := out.String()
	if spans == 0 || strings.ContainsAny(o, "\";#=") || strings.Contains(o, "--") || strings.Contains(o, "/*") || sqlOnly.MatchString(o) {
		return false
	}
	for q := strings.IndexByte(o, '\''); q >= 0; q = strings.IndexByte(o, '\'') {
		if q == 0 || q == len(o)-1 || !isLetter(o[q-1]) || !isLetter(o[q+1]) {
			return false
		}
		o = o[q+1:]
	}
	words := 0
	for _, f := range strings.Fields(out.String()) {
		if len(f) > 1 && isLetter(f[0]) {
			words++
		}
	}
	return words >= 2
}

var sqlStatementStart = regexp.MustCompile(`(?i)^(?:select|with|insert|update|delete|explain|create|alter|drop)\b`)
