package detectbench

import (
	"fmt"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"
)

// crsDirectives configure CRS the way a REST API deploys it: blocking
// (anomaly scoring) at paranoia level 1, request bodies parsed (JSON via
// the recommended config's body-processor rules), REST methods and JSON
// allowed. Response inspection is off: we only compare request detection.
const crsDirectives = `
Include @coraza.conf-recommended
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess Off
SecAuditEngine Off
Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=1"
SecAction "id:900200,phase:1,pass,t:none,nolog,setvar:'tx.allowed_methods=GET HEAD POST OPTIONS PUT PATCH DELETE'"
SecAction "id:900220,phase:1,pass,t:none,nolog,setvar:'tx.allowed_request_content_type=|application/x-www-form-urlencoded| |multipart/form-data| |multipart/related| |text/xml| |application/xml| |application/soap+xml| |application/json| |application/graphql| |text/plain|'"
Include @owasp_crs/*.conf
`

// CRS wraps a Coraza WAF loaded with the embedded CRS v4.
type CRS struct {
	waf coraza.WAF
}

// NewCRS compiles the rule set (takes about a second).
func NewCRS() (*CRS, error) {
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().
		WithRootFS(coreruleset.FS).
		WithDirectives(crsDirectives))
	if err != nil {
		return nil, fmt.Errorf("load coraza crs: %w", err)
	}
	return &CRS{waf: waf}, nil
}

// Verdict runs one request through phases 1 and 2 and reports whether CRS
// would block it, with the IDs of the attack rules that matched.
func (c *CRS) Verdict(e *Entry) (blocked bool, rules []int) {
	tx := c.waf.NewTransaction()
	defer tx.Close()
	tx.ProcessConnection("192.0.2.10", 40000, "192.0.2.1", 8080)
	uri := e.Path
	if e.Query != "" {
		uri += "?" + e.Query
	}
	proto := e.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	tx.ProcessURI(uri, e.Method, proto)
	for _, h := range e.Headers {
		tx.AddRequestHeader(h[0], h[1])
	}
	it := tx.ProcessRequestHeaders()
	if it == nil && e.Body != "" {
		if it2, _, err := tx.WriteRequestBody([]byte(e.Body)); err == nil && it2 != nil {
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
		// Only scoring rules, not the 949 evaluation or setup rules.
		// 9xx011-9xx018 are the paranoia-level skip markers.
		if id >= 911000 && id < 949000 && !(id%1000 >= 11 && id%1000 <= 18) {
			ids = append(ids, id)
		}
	}
	return ids
}

// crsClass maps a CRS rule file to our class names, for the per-class
// "what fired" column (CRS does not label requests by class itself).
func crsClass(id int) string {
	switch {
	case id >= 942000 && id < 943000:
		return "sqli"
	case id >= 941000 && id < 942000:
		return "xss"
	case id >= 930000 && id < 931000:
		return "traversal"
	case id >= 932000 && id < 933000:
		return "cmdi"
	case id >= 934000 && id < 935000:
		return "generic"
	case id >= 944000 && id < 945000:
		return "java"
	case id >= 921000 && id < 922000:
		return "protocol-attack"
	case id >= 920000 && id < 921000:
		return "protocol"
	}
	return strings.TrimSpace(fmt.Sprint(id / 1000))
}
