package detect

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Severity ranks how bad a successful attack of a class would be.
type Severity uint8

// Severities, lowest first.
const (
	SeverityLow Severity = iota + 1
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

func (s Severity) String() string {
	switch s {
	case SeverityLow:
		return "low"
	case SeverityMedium:
		return "medium"
	case SeverityHigh:
		return "high"
	case SeverityCritical:
		return "critical"
	}
	return "unknown"
}

// ParseSeverity reads "low", "medium", "high" or "critical".
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(s) {
	case "low":
		return SeverityLow, nil
	case "medium":
		return SeverityMedium, nil
	case "high":
		return SeverityHigh, nil
	case "critical":
		return SeverityCritical, nil
	}
	return 0, fmt.Errorf("unknown severity %q", s)
}

// Part kinds a rule can apply to. "key" covers names of query parameters,
// form fields and JSON object keys; "request" rules see the whole request
// (header framing) once rather than a value.
const (
	KindPath      = "path"
	KindQuery     = "query"
	KindForm      = "form"
	KindJSON      = "json"
	KindCookie    = "cookie"
	KindHeader    = "header"
	KindMultipart = "multipart"
	KindBody      = "body"
	KindKey       = "key"
	KindRequest   = "request"
)

var valueKinds = []string{KindPath, KindQuery, KindForm, KindJSON, KindCookie, KindHeader, KindMultipart, KindBody}

type kindMask uint16

func kindBit(k string) (kindMask, bool) {
	switch k {
	case KindPath:
		return 1 << 0, true
	case KindQuery:
		return 1 << 1, true
	case KindForm:
		return 1 << 2, true
	case KindJSON:
		return 1 << 3, true
	case KindCookie:
		return 1 << 4, true
	case KindHeader:
		return 1 << 5, true
	case KindMultipart:
		return 1 << 6, true
	case KindBody:
		return 1 << 7, true
	case KindKey:
		return 1 << 8, true
	case KindRequest:
		return 1 << 9, true
	}
	return 0, false
}

// RuleSpec is one rule as written in YAML.
type RuleSpec struct {
	ID          string   `yaml:"id"`
	Class       string   `yaml:"class"`
	Severity    string   `yaml:"severity"`
	Confidence  int      `yaml:"confidence"`
	Description string   `yaml:"description"`
	Parts       []string `yaml:"parts"`
	// Keywords are lower-case literals searched in the canonical value by
	// one Aho-Corasick automaton for all rules; a rule with keywords is
	// evaluated further only when one of them occurs.
	Keywords []string `yaml:"keywords"`
	// Regex confirms a keyword hit; it is matched against the canonical
	// form, or the decoded form when Target is "decoded".
	Regex  string `yaml:"regex"`
	Target string `yaml:"target"`
	// Anchor evaluates the regex only where a keyword starts (as if it
	// began with ^ there), so a large pattern costs per keyword hit
	// instead of per byte of the value.
	Anchor bool `yaml:"anchor"`
	// Gate names a Go test run at each keyword position of an anchored
	// rule before its regex (see gates.go).
	Gate string `yaml:"gate"`
	// Check names a built-in Go check that must also pass (see checks.go).
	Check string `yaml:"check"`
	// Needs lists bytes of which every match of Regex contains at least
	// one (e.g. "(" for function calls): a value without any of them
	// skips the regex. A short keyword ("pi", "mail") hits inside common
	// words ("api", "email"); this gate keeps such hits from costing a
	// regex run each.
	Needs string `yaml:"needs"`
	// Kernel lists raw byte strings safe to match in the first bytes of a
	// request in the kernel (no decoding there).
	Kernel []string `yaml:"kernel"`
	// PL is the paranoia level (1-4, 0 means 1) from which the rule runs:
	// higher levels add rules that catch more and misfire more.
	PL int `yaml:"pl"`
	// Suspect rules emit no finding: a keyword hit only marks the request
	// suspicious, which sends it to the second stage (if one is set).
	Suspect bool `yaml:"suspect"`
	// Tokens rules have keywords that can be a whole plain token
	// (java.lang.Runtime, nikto, __proto__): they are also matched on
	// single-token values and on plain parameter, cookie and header names,
	// which every other rule skips.
	Tokens bool `yaml:"tokens"`
}

type ruleFile struct {
	Rules []RuleSpec `yaml:"rules"`
}

type rule struct {
	RuleSpec
	idx      int
	severity Severity
	kinds    kindMask
	re       *regexp.Regexp
	// reFree is an anchored rule's pattern without the anchor, for values
	// with more keyword hits than maxAnchorTries.
	reFree   *regexp.Regexp
	gate     gateFunc
	decoded  bool
	check    checkFunc
	reqCheck requestCheckFunc
	// gql is the document form of a GraphQL request check (the scan
	// parses the documents once for all of them).
	gql graphQLDocCheck
	// always is set for rules without keywords: they run on every part of
	// their kinds (their check has its own cheap gate).
	always bool
}

func parseRules(data []byte, source string) ([]RuleSpec, error) {
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse rules %s: %w", source, err)
	}
	return f.Rules, nil
}

func loadRuleFile(path string) ([]RuleSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rule file: %w", err)
	}
	return parseRules(data, path)
}

var errRule = errors.New("invalid rule")

func compileRule(spec RuleSpec, idx int) (*rule, error) {
	r := &rule{RuleSpec: spec, idx: idx}
	if spec.ID == "" || spec.Class == "" {
		return nil, fmt.Errorf("%w: rule %d needs id and class", errRule, idx)
	}
	sev, err := ParseSeverity(spec.Severity)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errRule, spec.ID, err)
	}
	r.severity = sev
	if spec.PL < 0 || spec.PL > 4 {
		return nil, fmt.Errorf("%w %s: pl %d not in 1..4", errRule, spec.ID, spec.PL)
	}
	if r.PL == 0 {
		r.PL = 1
	}
	if spec.Suspect && (len(spec.Keywords) == 0 || spec.Check != "" || spec.Regex != "") {
		return nil, fmt.Errorf("%w %s: a suspect rule has keywords only", errRule, spec.ID)
	}
	if spec.Tokens && len(spec.Keywords) == 0 {
		return nil, fmt.Errorf("%w %s: tokens needs keywords", errRule, spec.ID)
	}
	if spec.Confidence < 0 || spec.Confidence > 100 {
		return nil, fmt.Errorf("%w %s: confidence %d not in 0..100", errRule, spec.ID, spec.Confidence)
	}
	parts := spec.Parts
	if len(parts) == 0 {
		parts = valueKinds
	}
	for _, p := range parts {
		b, ok := kindBit(p)
		if !ok {
			return nil, fmt.Errorf("%w %s: unknown part %q", errRule, spec.ID, p)
		}
		r.kinds |= b
	}
	r.Keywords = make([]string, len(spec.Keywords))
	for i, k := range spec.Keywords {
		if k == "" {
			return nil, fmt.Errorf("%w %s: empty keyword", errRule, spec.ID)
		}
		r.Keywords[i] = strings.ToLower(k)
	}
	switch spec.Target {
	case "", "canonical":
	case "decoded":
		r.decoded = true
	default:
		return nil, fmt.Errorf("%w %s: unknown target %q", errRule, spec.ID, spec.Target)
	}
	if spec.Anchor && (spec.Regex == "" || r.decoded || len(spec.Keywords) == 0) {
		return nil, fmt.Errorf("%w %s: anchor needs a canonical regex and keywords", errRule, spec.ID)
	}
	if spec.Regex != "" {
		expr := spec.Regex
		if spec.Anchor {
			expr = "^(?:" + expr + ")"
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("%w %s: regex: %w", errRule, spec.ID, err)
		}
		r.re = re
		if spec.Anchor {
			if r.reFree, err = regexp.Compile(spec.Regex); err != nil {
				return nil, fmt.Errorf("%w %s: regex: %w", errRule, spec.ID, err)
			}
		}
	}
	if spec.Gate != "" {
		if !spec.Anchor {
			return nil, fmt.Errorf("%w %s: gate needs anchor", errRule, spec.ID)
		}
		if r.gate = ruleGate(spec.Gate); r.gate == nil {
			return nil, fmt.Errorf("%w %s: unknown gate %q", errRule, spec.ID, spec.Gate)
		}
	}
	if spec.Check != "" {
		if r.kinds&mustBit(KindRequest) != 0 {
			r.reqCheck = requestCheck(spec.Check)
			r.gql = graphQLCheck(spec.Check)
			if r.reqCheck == nil {
				return nil, fmt.Errorf("%w %s: unknown request check %q", errRule, spec.ID, spec.Check)
			}
		} else {
			r.check = valueCheck(spec.Check)
			if r.check == nil {
				return nil, fmt.Errorf("%w %s: unknown check %q", errRule, spec.ID, spec.Check)
			}
		}
	}
	if r.kinds&mustBit(KindRequest) != 0 && r.reqCheck == nil {
		return nil, fmt.Errorf("%w %s: request rules need a check", errRule, spec.ID)
	}
	if r.re == nil && r.check == nil && r.reqCheck == nil && len(r.Keywords) == 0 {
		return nil, fmt.Errorf("%w %s: no keywords, regex or check", errRule, spec.ID)
	}
	if len(r.Keywords) == 0 && r.reqCheck == nil {
		if r.check == nil {
			// A bare regex on every value would make the cost grow with the
			// rule count, which the keyword prefilter exists to prevent.
			return nil, fmt.Errorf("%w %s: a regex rule needs keywords", errRule, spec.ID)
		}
		r.always = true
	}
	return r, nil
}

func mustBit(k string) kindMask {
	b, _ := kindBit(k)
	return b
}
