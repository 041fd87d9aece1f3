package agent

import (
	"net/netip"
	"sync"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// resolveCache remembers the processes of a connection for a few seconds:
// a keep-alive connection carries many calls and its owners do not change,
// while attrib.Resolve takes the table lock for each. Two generations
// rotate, so an entry lives between one and two periods, and the size is
// bounded by the connections active in that time (and maxResolveCache).
type resolveCache struct {
	mu       sync.Mutex
	cur, old map[[2]netip.AddrPort]owners
	rotated  time.Time
	period   time.Duration
}

type owners struct{ server, client *call.Process }

const maxResolveCache = 65536

func newResolveCache(period time.Duration) *resolveCache {
	return &resolveCache{cur: map[[2]netip.AddrPort]owners{}, period: period}
}

func (c *resolveCache) get(client, server netip.AddrPort, now time.Time) (owners, bool) {
	k := [2]netip.AddrPort{client, server}
	c.mu.Lock()
	defer c.mu.Unlock()
	if age := now.Sub(c.rotated); age >= 2*c.period {
		c.old, c.cur, c.rotated = nil, make(map[[2]netip.AddrPort]owners), now
	} else if age >= c.period || len(c.cur) >= maxResolveCache {
		c.old, c.cur, c.rotated = c.cur, make(map[[2]netip.AddrPort]owners, len(c.cur)), now
	}
	if o, ok := c.cur[k]; ok {
		return o, true
	}
	if o, ok := c.old[k]; ok {
		c.cur[k] = o
		return o, true
	}
	return owners{}, false
}

func (c *resolveCache) put(client, server netip.AddrPort, o owners) {
	c.mu.Lock()
	c.cur[[2]netip.AddrPort{client, server}] = o
	c.mu.Unlock()
}
