package agent

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/behavior"
	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/datapath/guard"
)

// Store state names of the behavioural model.
const (
	behaviorState = "behavior"
	behaviorKey   = "behavior-key"
)

// defaultAbuseBlockTTL: how long protect mode blocks a client an abuse
// finding names, when not configured.
const defaultAbuseBlockTTL = 10 * time.Minute

// openBehavior builds the behavioural model and loads its baselines and
// hash key from the store (the key is generated once, so credential
// hashes stay comparable across restarts and nothing raw is stored).
func (a *Agent) openBehavior() error {
	bc := a.cfg.Behavior
	if bc.Disabled {
		return nil
	}
	cfg := behavior.Config{Window: bc.Window, LearningCalls: bc.LearningCalls, EnumDistinct: bc.EnumDistinct,
		AuthFailures: bc.AuthFailures, AccountFailures: bc.AccountFailures, ClientRateLimit: bc.ClientRateLimit,
		MaxClients: bc.MaxClients, MaxEndpoints: bc.MaxEndpoints, Positive: bc.Positive,
		AccountClients: bc.AccountClients, EnumFactor: bc.EnumFactor, RateFactor: bc.RateFactor, RateMin: bc.RateMin,
		ResponseSizeFactor: bc.ResponseSizeFactor, MaxAccounts: bc.MaxAccounts}
	for _, s := range bc.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a1, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return fmt.Errorf("behavior.trustedProxies: %q: %w", s, err)
			}
			p = netip.PrefixFrom(a1, a1.BitLen())
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, p)
	}
	key, err := a.store.LoadState(behaviorKey)
	if err != nil {
		return err
	}
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
		if err := a.store.SaveState(behaviorKey, key); err != nil {
			return err
		}
	}
	cfg.Key = key
	a.model = behavior.New(cfg, a.base)
	a.loadSpecs()
	if st, err := a.store.LoadState(behaviorState); err != nil {
		return err
	} else if len(st) > 0 {
		if err := a.model.RestoreState(st); err != nil {
			a.log.Warn("stored behaviour baselines not restored; learning again", "err", err)
		}
	}
	return nil
}

// loadSpecs installs the OpenAPI specs `apiwardenctl spec import` wrote to
// <dataDir>/specs/<service>.yaml (read at start).
func (a *Agent) loadSpecs() {
	files, _ := filepath.Glob(filepath.Join(a.cfg.DataDir, "specs", "*.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil {
			var sp *behavior.Spec
			if sp, err = behavior.ParseSpec(data); err == nil {
				service := strings.TrimSuffix(filepath.Base(f), ".yaml")
				a.model.SetSpec(service, sp)
				a.log.Info("api spec loaded", "service", service, "file", f)
				continue
			}
		}
		a.log.Warn("api spec not loaded", "file", f, "err", err)
	}
}

func (a *Agent) saveBehavior() error {
	if a.model == nil {
		return nil
	}
	st, err := a.model.MarshalState()
	if err != nil {
		return fmt.Errorf("encode behaviour baselines: %w", err)
	}
	return a.store.SaveState(behaviorState, st)
}

// observeBehavior feeds one call to the model and acts on its anomalies:
// each is an event of class "abuse"; in protect mode a finding that names
// a client blocks its source address at the guard for BlockTTL.
func (a *Agent) observeBehavior(c *call.Call, service, template string) {
	if a.model == nil {
		return
	}
	for _, an := range a.model.Observe(c, service, template) {
		action := "monitor"
		protect := a.modeFor(service) == ModeProtect
		if an.Block && protect && an.Severity >= detect.SeverityHigh {
			action = a.blockAbuser(an)
		}
		a.metrics.attack(an.Class, action)
		a.metrics.anomaly(an.RuleID, action)
		client := an.Client.Source.String()
		if an.Client.Addr != an.Client.Source {
			client += " (forwarded for " + an.Client.Addr.String() + ")"
		}
		a.events.Record(apiserver.Event{
			Time: c.Request.Start, Service: service, Endpoint: an.Endpoint, Client: client,
			Class: an.Class, RuleID: an.RuleID, Severity: an.Severity.String(), Part: an.Part,
			Excerpt: an.Excerpt, Action: action,
		})
	}
}

// blockAbuser blocks the address the traffic came from. Behind a proxy
// that is the proxy: a forwarded client is recorded, not blocked, since
// blocking the proxy would block everyone behind it.
func (a *Agent) blockAbuser(an behavior.Anomaly) string {
	if a.guard == nil {
		return "block-failed"
	}
	if an.Client.Addr != an.Client.Source {
		return "monitor"
	}
	ttl := a.cfg.Behavior.BlockTTL
	if ttl <= 0 {
		ttl = defaultAbuseBlockTTL
	}
	src := an.Client.Source.Unmap()
	prefix := netip.PrefixFrom(src, src.BitLen())
	a.activateGuard()
	if err := a.guard.Block(prefix, ttl, guard.ReasonDetection); err != nil {
		a.log.Warn("abuse block", "source", prefix, "err", err)
		return "block-failed"
	}
	now := time.Now()
	a.blocks.put(prefix, blockMeta{reason: "abuse: " + an.RuleID, created: now, expires: now.Add(ttl)})
	return "blocked"
}
