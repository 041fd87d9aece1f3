// Package detect finds attack payloads in HTTP requests: it decodes every
// request part an attacker controls and matches it against attack rules
// (data, with a keyword prefilter) and libinjection.
package detect

import (
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// The built-in rules: builtin.yaml first, then one file per attack
// family (families.*.yaml), loaded in name order.
//
//go:embed rules/*.yaml
var builtinFS embed.FS

// Defaults for the per-request work bounds.
const (
	DefaultMaxInspectBytes     = 256 << 10
	DefaultMaxParts            = 8192
	DefaultMaxJSONDepth        = 32
	DefaultMaxDecodePasses     = 3
	DefaultMaxExcerpt          = 120
	DefaultMaxFindings         = 16
	DefaultMaxHeaderValueBytes = 8 << 10
	DefaultMaxHeaderBytes      = 32 << 10
	DefaultMaxHeaderCount      = 100
	// DefaultParanoia is the level for APIs: level 2 rules (CRS-style SQL
	// operators, broader command and Java patterns) stay quiet on JSON
	// API traffic, level 3-4 rules do not.
	DefaultParanoia = 2
	// DefaultSecondStageSkip: requests already blocked by a rule do not
	// need the second stage's opinion.
	DefaultSecondStageSkip = 85
)

// SecondStage is a slower, broader engine (e.g. Coraza + CRS) run only on
// the requests the first stage finds suspicious.
type SecondStage interface {
	Inspect(req *call.Request, service string) []Finding
}

// Config configures a Detector. Zero limits take the defaults above.
type Config struct {
	// RuleFiles are YAML rule files loaded after the built-in rules; a rule
	// whose id equals a built-in one replaces it. Built-in rules never
	// need to look at values that are a single plain token (ids, numbers,
	// e-mail addresses); a user keyword that is such a token turns that
	// shortcut off.
	RuleFiles []string
	// Disabled maps a service name ("*" for every service) to rule IDs or
	// "class:<class>" entries that do not run for it.
	Disabled map[string][]string
	// PathOverrides disable rules for paths under a prefix, e.g. a CMS
	// endpoint that legitimately accepts HTML.
	PathOverrides []PathOverride

	// Paranoia is the default paranoia level (1-4, 0 means
	// DefaultParanoia): rules above it do not run. ServiceParanoia sets it
	// per service.
	Paranoia        int
	ServiceParanoia map[string]int

	// SecondStage, when set, sees only the requests the rules found
	// suspicious (any finding or a suspect keyword) and none of whose
	// findings reaches SecondStageSkip; its findings are added.
	SecondStage     SecondStage
	SecondStageSkip int

	// Shapes, when set, tells what each parameter of an endpoint usually
	// receives; findings on values that fit lose confidence, findings on
	// values that break a learned integer, uuid or enum gain it.
	Shapes Shapes

	// MaxInspectBytes bounds the decoded bytes inspected per request;
	// MaxParts bounds the number of values. Parts past either are skipped
	// and counted (Stats.BytesLimitHits, Stats.PartsLimitHits).
	MaxInspectBytes int
	MaxParts        int
	// MaxJSONDepth bounds JSON nesting; deeper values are skipped.
	MaxJSONDepth int
	// MaxDecodePasses bounds repeated URL-decoding of one value.
	MaxDecodePasses int
	MaxExcerpt      int
	MaxFindings     int
	// Header size limits used by the header-oversized rule.
	MaxHeaderValueBytes int
	MaxHeaderBytes      int
	MaxHeaderCount      int

	// CleanCacheSize bounds the values (of at most 256 bytes) remembered
	// as clean, per rule mask, so a repeated value (a browser's
	// User-Agent, a query string) skips the rules; 0 means
	// DefaultCleanCacheSize, negative turns the cache off. Findings are
	// the same either way.
	CleanCacheSize int
}

// PathOverride disables rules for requests whose path starts with
// PathPrefix, for one service or all ("").
type PathOverride struct {
	Service    string
	PathPrefix string
	Disable    []string
}

// Finding is one rule that matched one request part.
type Finding struct {
	RuleID     string
	Class      string
	Severity   Severity
	Confidence int // 0-100
	// Part names where the payload was: "path", "query:id",
	// "json:$.user.name", "json-key:$.filter.$ne", "form:comment",
	// "cookie:session", "header:User-Agent", "multipart:file.filename",
	// "body".
	Part string
	// Excerpt is the decoded payload, truncated, with tokens redacted.
	Excerpt     string
	Description string
}

// Signature is a literal a kernel program can match on the raw bytes at
// the start of a request, without any decoding.
type Signature struct {
	RuleID  string
	Class   string
	Literal []byte
	// CaseInsensitive means the kernel should compare ASCII case-folded.
	CaseInsensitive bool
}

// Stats counts the detector's work and the bounds it hit.
type Stats struct {
	Requests        uint64
	Findings        uint64
	PartsInspected  uint64
	BytesInspected  uint64
	BytesLimitHits  uint64
	PartsLimitHits  uint64
	DepthLimitHits  uint64
	FindingsDropped uint64
	// AnchorLimitHits counts parts where an anchored rule gave up after
	// maxAnchorTries keyword positions.
	AnchorLimitHits uint64
	// SecondStage counts requests handed to the second stage;
	// ShapeLowered and ShapeRaised count findings whose confidence the
	// learned parameter shapes changed.
	SecondStage  uint64
	ShapeLowered uint64
	ShapeRaised  uint64
	// ShapeBreaks counts ShapeBreakRule findings: a suspect value that
	// broke a learned typed parameter with no rule matching it.
	ShapeBreaks uint64
	// ProseLowered counts shell findings demoted because the command sat
	// in a markdown code span of natural-language text.
	ProseLowered uint64
	// CleanHits counts values skipped as known clean (Config.CleanCacheSize).
	CleanHits uint64
}

// Detector is safe for concurrent use.
type Detector struct {
	cfg   Config
	log   *slog.Logger
	rules []*rule
	ac    keywords
	// patRules maps an automaton pattern to the rules that own it.
	patRules [][]int32
	// byteRules maps a one-byte keyword to its rules (kept out of the
	// automaton, see scan.value).
	byteRules    [256][]int32
	hasByteRules bool
	// always lists, per kind bit, the keyword-less rules for that kind.
	always   [10][]int32
	reqRules []reqRule
	// tokAC holds the keywords of Tokens rules, matched on plain tokens
	// and names; tokPatRules maps its patterns to rules.
	tokAC       keywords
	tokPatRules [][]int32
	// svcMask holds the rule mask per service named in Disabled or
	// ServiceParanoia; defMask is the one of every other service.
	svcMask map[string][]bool
	// disabled holds a rule mask per service; "*" is folded into each.
	disabled    map[string][]bool
	disabledAll []bool
	overrides   []override
	anyAnchor   bool
	skipInert   bool
	// clean holds the clean-value cache of each stable rule mask, by the
	// mask's first element; read-only after New.
	clean map[*bool]*cleanCache

	scratch sync.Pool
	// noHeaderIndex makes the request checks walk the headers as they
	// did before the header index (tests compare the two).
	noHeaderIndex bool

	requests, findings, partsInspected, bytesInspected  atomic.Uint64
	bytesLimitHits, partsLimitHits, depthLimitHits      atomic.Uint64
	findingsDropped, anchorLimitHits                    atomic.Uint64
	secondStage, shapeLowered, shapeRaised, shapeBreaks atomic.Uint64
	proseLowered, cleanHits                             atomic.Uint64
}

type override struct {
	service, prefix string
	mask            []bool
}

// New compiles the built-in rules and cfg.RuleFiles.
func New(cfg Config, log *slog.Logger) (*Detector, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	setDefault(&cfg.MaxInspectBytes, DefaultMaxInspectBytes)
	setDefault(&cfg.MaxParts, DefaultMaxParts)
	setDefault(&cfg.MaxJSONDepth, DefaultMaxJSONDepth)
	setDefault(&cfg.MaxDecodePasses, DefaultMaxDecodePasses)
	setDefault(&cfg.MaxExcerpt, DefaultMaxExcerpt)
	setDefault(&cfg.MaxFindings, DefaultMaxFindings)
	setDefault(&cfg.MaxHeaderValueBytes, DefaultMaxHeaderValueBytes)
	setDefault(&cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&cfg.MaxHeaderCount, DefaultMaxHeaderCount)
	setDefault(&cfg.Paranoia, DefaultParanoia)
	setDefault(&cfg.SecondStageSkip, DefaultSecondStageSkip)
	if p, ok := cfg.Shapes.(*Profiler); ok && p == nil {
		cfg.Shapes = nil // a nil *Profiler is no shapes, not a nil call
	}
	if cfg.Paranoia > 4 {
		return nil, fmt.Errorf("paranoia level %d not in 1..4", cfg.Paranoia)
	}
	for svc, pl := range cfg.ServiceParanoia {
		if pl < 1 || pl > 4 {
			return nil, fmt.Errorf("paranoia level %d of service %q not in 1..4", pl, svc)
		}
	}

	specs, err := builtinSpecs()
	if err != nil {
		return nil, err
	}
	d := &Detector{cfg: cfg, log: log.With("component", "detect"), skipInert: true}
	for _, f := range cfg.RuleFiles {
		more, err := loadRuleFile(f)
		if err != nil {
			return nil, err
		}
		if specs, err = mergeRules(specs, more); err != nil {
			return nil, fmt.Errorf("rule file %s: %w", f, err)
		}
		for _, r := range more {
			for _, k := range r.Keywords {
				if inertToken(k) {
					d.skipInert = false
				}
			}
		}
	}
	if err := d.compile(specs); err != nil {
		return nil, err
	}
	d.buildCleanCaches()
	d.scratch.New = func() any { return &scan{} }
	d.log.Info("rules loaded", "rules", len(d.rules), "keywords", d.ac.count(), "files", len(cfg.RuleFiles))
	return d, nil
}

func builtinSpecs() ([]RuleSpec, error) {
	names, err := fs.Glob(builtinFS, "rules/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool {
		// builtin.yaml first so family files can only add rules.
		if (names[i] == "rules/builtin.yaml") != (names[j] == "rules/builtin.yaml") {
			return names[i] == "rules/builtin.yaml"
		}
		return names[i] < names[j]
	})
	var specs []RuleSpec
	for _, n := range names {
		data, err := builtinFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		more, err := parseRules(data, n)
		if err != nil {
			return nil, err
		}
		specs = append(specs, more...)
	}
	return specs, nil
}

func setDefault(v *int, def int) {
	if *v <= 0 {
		*v = def
	}
}

func mergeRules(base, more []RuleSpec) ([]RuleSpec, error) {
	pos := make(map[string]int, len(base))
	for i, r := range base {
		pos[r.ID] = i
	}
	inFile := map[string]bool{}
	for _, r := range more {
		if inFile[r.ID] {
			return nil, fmt.Errorf("%w: duplicate rule id %q", errRule, r.ID)
		}
		inFile[r.ID] = true
		if i, ok := pos[r.ID]; ok {
			base[i] = r
			continue
		}
		pos[r.ID] = len(base)
		base = append(base, r)
	}
	return base, nil
}

func (d *Detector) compile(specs []RuleSpec) error {
	seen := map[string]bool{}
	var patterns, tokPatterns []string
	patIndex := map[string]int{}
	tokIndex := map[string]int{}
	for i, s := range specs {
		if seen[s.ID] {
			return fmt.Errorf("compile rules: duplicate rule id %q", s.ID)
		}
		seen[s.ID] = true
		r, err := compileRule(s, i)
		if err != nil {
			return fmt.Errorf("compile rules: %w", err)
		}
		d.rules = append(d.rules, r)
		d.anyAnchor = d.anyAnchor || r.Anchor
		for _, k := range r.Keywords {
			if len(k) == 1 {
				d.byteRules[k[0]] = append(d.byteRules[k[0]], int32(i))
				d.hasByteRules = true
				continue
			}
			addPattern(patIndex, &patterns, &d.patRules, k, int32(i))
			if r.Tokens {
				addPattern(tokIndex, &tokPatterns, &d.tokPatRules, k, int32(i))
			}
		}
		if r.reqCheck != nil {
			d.reqRules = append(d.reqRules, reqRule{i: int32(i), check: r.reqCheck, gql: r.gql})
		} else if r.always {
			for b := 0; b < len(d.always); b++ {
				if r.kinds&(1<<b) != 0 {
					d.always[b] = append(d.always[b], int32(i))
				}
			}
		}
	}
	var err error
	if d.ac, err = buildKeywords(patterns); err != nil {
		return err
	}
	if d.tokAC, err = buildKeywords(tokPatterns); err != nil {
		return err
	}

	global, err := d.mask(d.cfg.Disabled["*"], nil)
	if err != nil {
		return err
	}
	d.disabledAll = d.plMask(global, d.cfg.Paranoia)
	d.disabled = map[string][]bool{}
	for svc, ids := range d.cfg.Disabled {
		if svc == "*" {
			continue
		}
		m, err := d.mask(ids, global)
		if err != nil {
			return err
		}
		pl := d.cfg.Paranoia
		if p, ok := d.cfg.ServiceParanoia[svc]; ok {
			pl = p
		}
		d.disabled[svc] = d.plMask(m, pl)
	}
	for svc, pl := range d.cfg.ServiceParanoia {
		if _, ok := d.disabled[svc]; !ok {
			d.disabled[svc] = d.plMask(global, pl)
		}
	}
	for _, o := range d.cfg.PathOverrides {
		m, err := d.mask(o.Disable, nil)
		if err != nil {
			return err
		}
		d.overrides = append(d.overrides, override{service: o.Service, prefix: o.PathPrefix, mask: m})
	}
	return nil
}

// mask turns rule IDs and "class:x" entries into a per-rule bool slice,
// starting from base. Unknown names are errors: a typo would otherwise
// silently leave a noisy rule on.
func (d *Detector) mask(names []string, base []bool) ([]bool, error) {
	m := make([]bool, len(d.rules))
	copy(m, base)
	for _, n := range names {
		found := false
		if cls, ok := strings.CutPrefix(n, "class:"); ok {
			for i, r := range d.rules {
				if r.Class == cls {
					m[i], found = true, true
				}
			}
		} else {
			for i, r := range d.rules {
				if r.ID == n {
					m[i], found = true, true
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("disable rules: unknown rule or class %q", n)
		}
	}
	return m, nil
}

// addPattern records that keyword k triggers rule ri: k gets one pattern
// index per automaton (index), rules lists the rules of each pattern.
func addPattern(index map[string]int, patterns *[]string, rules *[][]int32, k string, ri int32) {
	p, ok := index[k]
	if !ok {
		p = len(*patterns)
		index[k] = p
		*patterns = append(*patterns, k)
		*rules = append(*rules, nil)
	}
	(*rules)[p] = append((*rules)[p], ri)
}

// plMask returns base with every rule above paranoia level pl disabled.
func (d *Detector) plMask(base []bool, pl int) []bool {
	m := make([]bool, len(d.rules))
	copy(m, base)
	for i, r := range d.rules {
		if r.PL > pl {
			m[i] = true
		}
	}
	return m
}

// Stats returns the counters since New.
func (d *Detector) Stats() Stats {
	return Stats{
		Requests:        d.requests.Load(),
		Findings:        d.findings.Load(),
		PartsInspected:  d.partsInspected.Load(),
		BytesInspected:  d.bytesInspected.Load(),
		BytesLimitHits:  d.bytesLimitHits.Load(),
		PartsLimitHits:  d.partsLimitHits.Load(),
		DepthLimitHits:  d.depthLimitHits.Load(),
		FindingsDropped: d.findingsDropped.Load(),
		AnchorLimitHits: d.anchorLimitHits.Load(),
		SecondStage:     d.secondStage.Load(),
		ShapeLowered:    d.shapeLowered.Load(),
		ShapeRaised:     d.shapeRaised.Load(),
		ShapeBreaks:     d.shapeBreaks.Load(),
		ProseLowered:    d.proseLowered.Load(),
		CleanHits:       d.cleanHits.Load(),
	}
}

// KernelSignatures returns the raw literals of enabled high-confidence
// rules (confidence >= 90) for the in-kernel first-segment matcher. They
// are matched without decoding, so each is a byte string that only
// appears in attacks even in its encoded-as-sent form.
func (d *Detector) KernelSignatures() []Signature {
	var out []Signature
	for i, r := range d.rules {
		if d.disabledAll[i] || r.Confidence < 90 {
			continue
		}
		for _, k := range r.Kernel {
			out = append(out, Signature{RuleID: r.ID, Class: r.Class, Literal: []byte(k), CaseInsensitive: true})
		}
	}
	return out
}

// Inspect returns the findings for one request of service, most confident
// first. It never modifies req.
func (d *Detector) Inspect(req *call.Request, service string) []Finding {
	if req == nil {
		return nil
	}
	d.requests.Add(1)
	s := d.scratch.Get().(*scan)
	s.reset(d, req, d.maskFor(service, req.Path))
	prof, _ := d.cfg.Shapes.(*Profiler)
	if prof != nil {
		// A request the profiler will learn has its values collected
		// by this walk, not by a second one (Profiler.Learn).
		s.collect = prof.willSample(d, req, service)
	}
	s.run()
	if col := s.collect; col != nil {
		s.collect = nil
		col.complete = !s.limitHit
		col.depthHits = s.depthHits
		prof.stash(col)
	}
	s.adjust(service)
	if d.cfg.SecondStage != nil && (s.suspect || len(s.findings) > 0) && maxConf(s.findings) < d.cfg.SecondStageSkip {
		d.secondStage.Add(1)
		for _, f := range d.cfg.SecondStage.Inspect(req, service) {
			if len(s.findings) >= d.cfg.MaxFindings {
				d.findingsDropped.Add(1)
				break
			}
			s.findings = append(s.findings, f)
		}
	}
	out := s.findings
	s.findings = nil
	d.partsInspected.Add(uint64(s.parts))
	d.bytesInspected.Add(uint64(s.bytes))
	d.scratch.Put(s)
	d.findings.Add(uint64(len(out)))
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Confidence != out[j].Confidence {
			return out[i].Confidence > out[j].Confidence
		}
		return out[i].Severity > out[j].Severity
	})
	return out
}

func maxConf(fs []Finding) int {
	m := -1
	for _, f := range fs {
		m = max(m, f.Confidence)
	}
	return m
}

func (d *Detector) maskFor(service, path string) []bool {
	m, ok := d.disabled[service]
	if !ok {
		m = d.disabledAll
	}
	var merged []bool
	for _, o := range d.overrides {
		if (o.service == "" || o.service == service) && strings.HasPrefix(path, o.prefix) {
			if merged == nil {
				merged = make([]bool, len(m))
				copy(merged, m)
			}
			for i, v := range o.mask {
				merged[i] = merged[i] || v
			}
		}
	}
	if merged != nil {
		return merged
	}
	return m
}
