package tls

import "slices"

// CounterNames lists the kernel counter keys of Stats, for checks
// (dashboards, alerts) that must know the metric names without loading the
// programs.
func CounterNames() []string { return slices.Sorted(slices.Values(counterNames)) }
