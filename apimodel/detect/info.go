package detect

// RuleInfo describes one compiled rule, for the API's rule listing.
type RuleInfo struct {
	ID          string
	Class       string
	Severity    string
	Description string
	Confidence  int
	// Paranoia is the level (1-4) from which the rule runs.
	Paranoia int
	// Enabled is false when the rule is disabled for every service or
	// above the default paranoia level.
	Enabled bool
	// KernelLiterals counts the rule's raw literals; only those of enabled
	// rules with confidence >= 90 reach the kernel (KernelSignatures).
	KernelLiterals int
	// Suspect rules only mark a request for the second stage.
	Suspect bool
}

// Rules lists the compiled rules in load order (built-in, then files).
func (d *Detector) Rules() []RuleInfo {
	out := make([]RuleInfo, 0, len(d.rules))
	for i, r := range d.rules {
		pl := r.PL
		if pl == 0 {
			pl = 1
		}
		out = append(out, RuleInfo{
			ID: r.ID, Class: r.Class, Severity: r.severity.String(), Description: r.Description,
			Confidence: r.Confidence, Paranoia: pl, Enabled: !d.disabledAll[i],
			KernelLiterals: len(r.Kernel), Suspect: r.Suspect,
		})
	}
	return out
}
