// Package iface keeps a set of network interfaces attached to a sensor:
// every interface that is up (loopback included) or only the named ones,
// following netlink link updates so interfaces created later (container
// veths) are attached as they appear and forgotten when they go.
package iface

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Attacher is what the manager attaches: capture.Sensor and other sensors.
// Both calls must be idempotent.
type Attacher interface {
	Attach(ifindex int) error
	Detach(ifindex int) error
}

// Config selects interfaces.
type Config struct {
	// Names lists the interfaces to attach (in any state, as soon as they
	// exist). Empty means every interface that is up, loopback included.
	Names []string
	// NetNS is the network namespace to watch; zero value (or -1) means the
	// caller's. The Attacher gets ifindexes of that namespace and must
	// resolve them there.
	NetNS netns.NsHandle
}

// resubscribeDelay paces re-subscription after the netlink socket fails
// (e.g. ENOBUFS when a burst of link events overflows it).
const resubscribeDelay = time.Second

// Stats reports what the manager did.
type Stats struct {
	Attached       int    // interfaces attached now
	Attaches       uint64 // successful attaches since start
	AttachFailures uint64 // attaches that failed (logged, not fatal)
	Detaches       uint64 // interfaces forgotten (deleted or no longer selected)
	Resyncs        uint64 // netlink re-subscriptions after a socket error
}

// Manager attaches an Attacher to the selected interfaces.
type Manager struct {
	cfg Config
	a   Attacher
	log *slog.Logger

	mu       sync.Mutex
	attached map[int]string // ifindex -> name

	attaches, failures, detaches, resyncs atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

// New returns a manager; nothing happens until Start.
func New(cfg Config, a Attacher, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		cfg:      cfg,
		a:        a,
		log:      log.With("component", "iface"),
		attached: map[int]string{},
	}
}

// Start subscribes to link updates, attaches the interfaces present now,
// and keeps following updates in the background until ctx ends or Close.
// It returns once the initial attach is done, so a caller knows which
// interfaces are covered.
func (m *Manager) Start(ctx context.Context) error {
	if m.stop != nil {
		return errors.New("iface manager already started")
	}
	updates, unsub, err := m.subscribe()
	if err != nil {
		return err
	}
	if err := m.sync(); err != nil {
		unsub()
		return err
	}
	m.stop = make(chan struct{})
	m.done = make(chan struct{})
	go m.follow(ctx, updates, unsub)
	return nil
}

// subscribe opens a link-update subscription; unsub ends it.
func (m *Manager) subscribe() (<-chan netlink.LinkUpdate, func(), error) {
	ch := make(chan netlink.LinkUpdate, 64)
	stop := make(chan struct{})
	opts := netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) { m.log.Debug("link subscription", "err", err) },
	}
	if m.cfg.NetNS > 0 {
		ns := m.cfg.NetNS
		opts.Namespace = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(ch, stop, opts); err != nil {
		return nil, nil, fmt.Errorf("subscribe link updates: %w", err)
	}
	var once sync.Once
	return ch, func() { once.Do(func() { close(stop) }) }, nil
}

// sync lists the links and reconciles: attach selected ones, forget those
// that vanished. Subscribing before listing means no link falls between.
func (m *Manager) sync() error {
	h, err := netlink.NewHandleAt(m.ns())
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	present := map[int]bool{}
	for _, l := range links {
		present[l.Attrs().Index] = true
		m.consider(l)
	}
	m.mu.Lock()
	var gone []int
	for ifindex := range m.attached {
		if !present[ifindex] {
			gone = append(gone, ifindex)
		}
	}
	m.mu.Unlock()
	for _, ifindex := range gone {
		m.forget(ifindex)
	}
	return nil
}

// ns is the namespace to list links in. NsHandle's zero value is fd 0, not
// "unset", so only a positive handle counts as configured.
func (m *Manager) ns() netns.NsHandle {
	if m.cfg.NetNS > 0 {
		return m.cfg.NetNS
	}
	return netns.None()
}

func (m *Manager) follow(ctx context.Context, updates <-chan netlink.LinkUpdate, unsub func()) {
	defer close(m.done)
	defer func() { unsub() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.stop:
			return
		case u, ok := <-updates:
			if ok {
				m.handle(u)
				continue
			}
			// The socket failed; updates may have been lost, so
			// subscribe again and reconcile with a fresh list.
			m.resyncs.Add(1)
			m.log.Warn("link subscription lost, resubscribing")
			for {
				select {
				case <-ctx.Done():
					return
				case <-m.stop:
					return
				case <-time.After(resubscribeDelay):
				}
				unsub()
				unsub = func() {}
				ch, un, err := m.subscribe()
				if err == nil {
					if err = m.sync(); err == nil {
						updates, unsub = ch, un
						break
					}
					un()
				}
				m.log.Warn("resubscribe link updates", "err", err)
			}
		}
	}
}

func (m *Manager) handle(u netlink.LinkUpdate) {
	switch u.Header.Type {
	case unix.RTM_DELLINK:
		m.forget(int(u.Index))
	case unix.RTM_NEWLINK:
		m.consider(u.Link)
	}
}

// selected reports whether the configuration wants this link.
func (m *Manager) selected(l netlink.Link) bool {
	a := l.Attrs()
	if len(m.cfg.Names) > 0 {
		return slices.Contains(m.cfg.Names, a.Name)
	}
	return a.Flags&net.FlagUp != 0
}

// consider attaches a selected link once. In Names mode a link renamed away
// from the list is forgotten; in all-interfaces mode a link that goes down
// stays attached (tcx links survive down/up, re-attaching would churn).
func (m *Manager) consider(l netlink.Link) {
	a := l.Attrs()
	m.mu.Lock()
	_, have := m.attached[a.Index]
	m.mu.Unlock()
	want := m.selected(l)
	switch {
	case want && !have:
		if err := m.a.Attach(a.Index); err != nil {
			m.failures.Add(1)
			m.log.Warn("attach interface", "name", a.Name, "ifindex", a.Index, "err", err)
			return
		}
		m.attaches.Add(1)
		m.mu.Lock()
		m.attached[a.Index] = a.Name
		m.mu.Unlock()
		m.log.Info("interface attached", "name", a.Name, "ifindex", a.Index)
	case !want && have && len(m.cfg.Names) > 0:
		m.forget(a.Index)
	}
}

func (m *Manager) forget(ifindex int) {
	m.mu.Lock()
	name, have := m.attached[ifindex]
	delete(m.attached, ifindex)
	m.mu.Unlock()
	if !have {
		return
	}
	m.detaches.Add(1)
	if err := m.a.Detach(ifindex); err != nil {
		m.log.Warn("detach interface", "name", name, "ifindex", ifindex, "err", err)
		return
	}
	m.log.Info("interface forgotten", "name", name, "ifindex", ifindex)
}

// Attached returns ifindex -> name of the attached interfaces.
func (m *Manager) Attached() map[int]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[int]string, len(m.attached))
	for k, v := range m.attached {
		out[k] = v
	}
	return out
}

// Stats returns counters of attach activity.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	n := len(m.attached)
	m.mu.Unlock()
	return Stats{
		Attached:       n,
		Attaches:       m.attaches.Load(),
		AttachFailures: m.failures.Load(),
		Detaches:       m.detaches.Load(),
		Resyncs:        m.resyncs.Load(),
	}
}

// Close stops following updates and detaches every interface it attached.
func (m *Manager) Close() error {
	if m.stop != nil {
		select {
		case <-m.stop:
		default:
			close(m.stop)
		}
		<-m.done
	}
	m.mu.Lock()
	ifs := make([]int, 0, len(m.attached))
	for i := range m.attached {
		ifs = append(ifs, i)
	}
	m.attached = map[int]string{}
	m.mu.Unlock()
	var errs []error
	for _, i := range ifs {
		if err := m.a.Detach(i); err != nil {
			errs = append(errs, fmt.Errorf("detach ifindex %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
