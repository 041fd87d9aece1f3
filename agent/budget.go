package agent

import (
	"fmt"
	"maps"

	dpcapture "github.com/apiwarden/apiwarden/datapath/capture"
)

// updateBudgetPorts writes the per-service copy budgets of
// CopyBudget.Services to the capture program, keyed by the listening ports
// of the services' processes (it runs when processes come and go, like the
// held ports).
func (a *Agent) updateBudgetPorts() {
	svcs := a.cfg.CopyBudget.Services
	if len(svcs) == 0 || a.capture == nil {
		return
	}
	want := map[uint16]dpcapture.PortBudget{}
	for _, p := range a.procs.Processes() {
		if p.Exited || len(p.ListenPorts) == 0 || p.PID == a.self {
			continue
		}
		l, ok := svcs[baseName(p.Exe)]
		if !ok {
			continue
		}
		for _, port := range p.ListenPorts {
			if len(want) < dpcapture.MaxBudgetPorts {
				want[port] = dpcapture.PortBudget{Request: uint32(l.RequestBytes), Response: uint32(l.ResponseBytes)}
			}
		}
	}
	if maps.Equal(want, a.budgetPorts) {
		return
	}
	if err := a.capture.SetPortBudgets(want); err != nil {
		a.log.Warn("per-service copy budgets", "err", err)
		return
	}
	a.budgetPorts = want
	a.log.Info("per-service copy budgets", "ports", fmt.Sprint(want))
}
