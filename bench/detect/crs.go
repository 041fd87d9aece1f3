package detectbench

import (
	"github.com/apiwarden/apiwarden/apimodel/detect/crsstage"
)

// CRS is Coraza v3 + OWASP CRS v4 with a REST policy (see crsstage).
type CRS struct {
	st *crsstage.Stage
}

// NewCRS compiles the rule set at paranoia level 1 (takes about a second).
func NewCRS() (*CRS, error) { return NewCRSAt(1) }

// NewCRSAt compiles the rule set blocking at paranoia level pl (1-4).
func NewCRSAt(pl int) (*CRS, error) {
	st, err := crsstage.New(pl)
	if err != nil {
		return nil, err
	}
	return &CRS{st: st}, nil
}

// Verdict reports whether CRS would block the entry, with the IDs of the
// attack rules that matched.
func (c *CRS) Verdict(e *Entry) (blocked bool, rules []int) {
	return c.st.Verdict(e.Request())
}
