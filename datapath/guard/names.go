package guard

import (
	"maps"
	"slices"
)

// CounterNames lists the keys Counters reports, for checks (dashboards,
// alerts) that must know the metric names without loading the programs.
func CounterNames() []string { return slices.Sorted(maps.Values(counterNames)) }
