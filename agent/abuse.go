package agent

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/behavior"
	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/datapath/guard"
)

// onAbuse records a behavioural finding (enumeration, brute force,
// credential stuffing) as an event of class "abuse:<kind>" and, for a
// protect-mode service with abuse.block set, blocks the client at the source guard for the
// auto-block TTL: abuse has no single request to cut, its source is what
// to stop.
func (a *Agent) onAbuse(service string, f behavior.Finding) {
	action := "monitor"
	now := time.Now()
	if a.cfg.Abuse.Block && a.cfg.ModeFor(service) == ModeProtect && a.guard != nil && f.Client.IsValid() {
		ttl := a.cfg.AutoBlock.TTL
		if ttl <= 0 {
			ttl = 10 * time.Minute
		}
		prefix := netip.PrefixFrom(f.Client, f.Client.BitLen())
		action = "blocked"
		if err := a.guard.Block(prefix, ttl, guard.ReasonDetection); err != nil {
			a.log.Warn("abuse block", "source", prefix, "err", err)
			action = "block-failed"
		} else {
			a.blocks.put(prefix, blockMeta{reason: "abuse: " + f.Kind, created: now, expires: now.Add(ttl)})
		}
	}
	class := "abuse:" + f.Kind
	a.metrics.attack(class, action)
	if a.events == nil { // tests without a store
		return
	}
	a.events.Record(apiserver.Event{
		Time: now, Service: service, Endpoint: f.Endpoint, Client: f.Client.String(), Class: class,
		RuleID: f.Kind, Severity: f.Severity, Part: "behavior", Excerpt: f.Evidence, Action: action,
	})
	a.log.Info("abuse", "kind", f.Kind, "client", f.Client, "endpoint", f.Endpoint, "action", action,
		"evidence", fmt.Sprint(f.Evidence))
}

func abuseModelConfig(c AbuseConfig) behavior.Config {
	bc := behavior.Config{Window: c.Window, EnumThreshold: c.EnumThreshold,
		AuthFailThreshold: c.AuthFailThreshold, AccountFailThreshold: c.AccountFailThreshold}
	for _, p := range c.TrustedProxies {
		if pf, err := netip.ParsePrefix(p); err == nil { // validated by Config.Validate
			bc.TrustedProxies = append(bc.TrustedProxies, pf)
		}
	}
	return bc
}
