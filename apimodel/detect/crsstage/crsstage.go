// Package crsstage runs Coraza v3 with the OWASP Core Rule Set v4 as the
// detector's second stage: it sees only the requests the first stage's
// rules find suspicious, so CRS's breadth costs CPU on a few requests
// instead of all of them.
package crsstage

import (
	"fmt"
	"strconv"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/detect"
)

// directives configure CRS the way a REST API deploys it: anomaly-scoring
// blocking at the given paranoia level, request bodies parsed (JSON via
// the recommended config's body-processor rules), the REST methods and
// API content types allowed, no response inspection.
const directives = `
Include @coraza.conf-recommended
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess Off
SecAuditEngine Off
Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d"
SecAction "id:900200,phase:1,pass,t:none,nolog,setvar:'tx.allowed_methods=GET HEAD POST OPTIONS PUT PATCH DELETE'"
SecAction "id:900220,phase:1,pass,t:none,nolog,setvar:'tx.allowed_request_content_type=|application/x-www-form-urlencoded| |multipart/form-data| |multipart/related| |text/xml| |application/xml| |application/soap+xml| |application/json| |application/graphql| |text/plain|'"
Include @owasp_crs/*.conf
`

// Stage is a compiled CRS; safe for concurrent use.
type Stage struct {
	waf coraza.WAF
	pl  int
}

// New compiles CRS blocking at paranoia level pl (1-4); it takes about a
// second and some 50 MB.
func New(pl int) (*Stage, error) { return NewWithout(pl) }

// NewWithout compiles CRS like New with the given rules removed (e.g.
// 920640, to see what a family's score owes to a protocol rule).
func NewWithout(pl int, remove ...int) (*Stage, error) {
	if pl < 1 || pl > 4 {
		return nil, fmt.Errorf("crs paranoia level %d not in 1..4", pl)
	}
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().
		WithRootFS(coreruleset.FS).
		WithDirectives(fmt.Sprintf(directives, pl) + removeDirectives(remove)))
	if err != nil {
		return nil, fmt.Errorf("load coraza crs: %w", err)
	}
	return &Stage{waf: waf, pl: pl}, nil
}

// Verdict runs phases 1 and 2 and reports whether CRS would block req,
// with the IDs of the scoring rules that matched.
func (s *Stage) Verdict(req *call.Request) (blocked bool, rules []int) {
	tx := s.waf.NewTransaction()
	defer tx.Close()
	tx.ProcessConnection("192.0.2.10", 40000, "192.0.2.1", 8080)
	uri := req.Path
	if req.RawQuery != "" {
		uri += "?" + req.RawQuery
	}
	proto := req.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	tx.ProcessURI(uri, req.Method, proto)
	for _, h := range req.Headers {
		tx.AddRequestHeader(h.Name, h.Value)
	}
	it := tx.ProcessRequestHeaders()
	if it == nil && len(req.Body) > 0 {
		if it2, _, err := tx.WriteRequestBody(req.Body); err == nil && it2 != nil {
			it = it2
		}
	}
	if it == nil {
		it, _ = tx.ProcessRequestBody()
	}
	if it == nil {
		return false, nil
	}
	return true, matched(tx)
}

func matched(tx types.Transaction) []int {
	var ids []int
	for _, m := range tx.MatchedRules() {
		id := m.Rule().ID()
		// Scoring rules only, not 949 evaluation or the 9xx011-9xx018
		// paranoia-level skip markers.
		if id >= 911000 && id < 949000 && !(id%1000 >= 11 && id%1000 <= 18) {
			ids = append(ids, id)
		}
	}
	return ids
}

// Confidence of a CRS block: just over the detector's default block
// threshold, under its own highest-confidence rules.
const Confidence = 88

// maxFindings bounds the findings one blocked request yields.
const maxFindings = 4

// Inspect implements detect.SecondStage: one finding per matched CRS
// rule when CRS would block.
func (s *Stage) Inspect(req *call.Request, _ string) []detect.Finding {
	blocked, ids := s.Verdict(req)
	if !blocked {
		return nil
	}
	var out []detect.Finding
	for _, id := range ids {
		if len(out) == maxFindings {
			break
		}
		out = append(out, detect.Finding{
			RuleID: "crs-" + strconv.Itoa(id), Class: Class(id), Severity: detect.SeverityHigh,
			Confidence: Confidence, Part: "request", Description: "OWASP CRS rule " + strconv.Itoa(id) + " (second stage)",
		})
	}
	if len(out) == 0 {
		out = append(out, detect.Finding{RuleID: "crs-anomaly", Class: "protocol", Severity: detect.SeverityMedium,
			Confidence: Confidence, Part: "request", Description: "OWASP CRS anomaly score over the threshold"})
	}
	return out
}

// Class maps a CRS rule to the detector's class names.
func Class(id int) string {
	switch id / 1000 {
	case 913:
		return "scanner"
	case 920:
		return "protocol"
	case 921:
		return "protocol_attack"
	case 922:
		return "multipart"
	case 930:
		return "traversal"
	case 931:
		return "rfi"
	case 932:
		return "rce"
	case 933:
		return "php"
	case 934:
		return "nodejs"
	case 941:
		return "xss"
	case 942:
		return "sqli"
	case 943:
		return "session_fixation"
	case 944:
		return "java"
	}
	return "crs"
}

func removeDirectives(ids []int) string {
	out := ""
	for _, id := range ids {
		out += "SecRuleRemoveById " + strconv.Itoa(id) + "\n"
	}
	return out
}
