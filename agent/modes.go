package agent

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiwarden/apiwarden/store"
)

// Runtime mode overrides (SetMode over the API) sit on top of the
// configuration's serviceModes and are persisted in the store, so they
// survive a restart until set back to "default". They are read on every
// finding, so the map is swapped whole (copy on write) and read without a
// lock.

// modeOverride is one service's runtime mode.
type modeOverride struct {
	Mode    Mode      `json:"mode"`
	Updated time.Time `json:"updated"`
}

type modeBook struct {
	mu  sync.Mutex // serialises writers
	cur atomic.Pointer[map[string]modeOverride]
	// apply serialises writing the modes to the kernel (per-port actions,
	// held ports) between housekeeping and SetMode.
	apply sync.Mutex
}

// applyModes writes the per-service modes to the kernel: per-port rule
// actions and the hold point's ports.
func (a *Agent) applyModes() {
	a.modes.apply.Lock()
	defer a.modes.apply.Unlock()
	a.updatePortModes()
	a.updateHoldPorts()
}

func (mb *modeBook) snapshot() map[string]modeOverride {
	if m := mb.cur.Load(); m != nil {
		return *m
	}
	return nil
}

// set installs (mode != "") or removes an override and returns the new map.
func (mb *modeBook) set(service string, mode Mode, now time.Time) map[string]modeOverride {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	next := maps.Clone(mb.snapshot())
	if next == nil {
		next = map[string]modeOverride{}
	}
	if mode == "" {
		delete(next, service)
	} else {
		next[service] = modeOverride{Mode: mode, Updated: now}
	}
	mb.cur.Store(&next)
	return next
}

// modeFor is the mode in force for a service: a runtime override, else
// the configuration's.
func (a *Agent) modeFor(service string) Mode {
	if o, ok := a.modes.snapshot()[service]; ok {
		return o.Mode
	}
	return a.cfg.ModeFor(service)
}

// serviceModes is the configuration's serviceModes with the runtime
// overrides applied: every service whose mode is set explicitly.
func (a *Agent) serviceModes() map[string]Mode {
	ov := a.modes.snapshot()
	if len(ov) == 0 {
		return a.cfg.ServiceModes
	}
	out := maps.Clone(a.cfg.ServiceModes)
	if out == nil {
		out = map[string]Mode{}
	}
	for svc, o := range ov {
		out[svc] = o.Mode
	}
	return out
}

const modesState = "modes"

// saveModes persists the runtime overrides.
func (a *Agent) saveModes(m map[string]modeOverride) error {
	if a.store == nil {
		return nil
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return a.store.SaveState(modesState, data)
}

// preloadModes opens the store briefly to restore the overrides before
// anything else is loaded.
func (a *Agent) preloadModes() error {
	st, err := store.Open(a.cfg.DataDir, a.base)
	if err != nil {
		return err
	}
	defer st.Close()
	return a.restoreModes(st)
}

// restoreModes loads the persisted overrides; it runs before the hold
// point and the sensors load, so a service set to protect at run time gets
// the kernel's enforcement programs and the hold point after a restart.
func (a *Agent) restoreModes(st *store.Store) error {
	data, err := st.LoadState(modesState)
	if err != nil || data == nil {
		return err
	}
	var saved map[string]modeOverride
	if err := json.Unmarshal(data, &saved); err != nil {
		return fmt.Errorf("stored modes: %w", err)
	}
	for svc, o := range saved {
		if validMode(o.Mode) != nil || svc == "" {
			delete(saved, svc)
		}
	}
	if len(saved) == 0 {
		return nil
	}
	a.modes.cur.Store(&saved)
	names := make([]string, 0, len(saved))
	for svc, o := range saved {
		names = append(names, svc+"="+string(o.Mode))
	}
	sort.Strings(names)
	a.log.Info("runtime mode overrides restored (apiwardenctl mode SERVICE default removes one)", "modes", names)
	return nil
}
