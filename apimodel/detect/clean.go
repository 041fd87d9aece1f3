package detect

import (
	"sync"
	"unsafe"
)

// Defaults of the clean-value cache (Config.CleanCacheSize).
const (
	DefaultCleanCacheSize = 4096
	// maxCleanValue bounds the values remembered: the repeated ones
	// (User-Agent, Referer, Accept-Language, query strings, enum-like
	// JSON strings) are short, and a long value costs more to keep than
	// the rules cost to rerun on the rare repeat.
	maxCleanValue = 256
)

// cleanCache remembers values the rules found nothing in: no finding
// (emitted or deduplicated), no suspect keyword, no anchored rule past its
// try bound. Such a value's verdict is a function of its bytes, its kind
// and the plus-as-space flag alone (the rules see only the decoded and
// canonical forms; names only label findings), so the same value of the
// same kind is skipped the next time under the same rule mask. A browser
// User-Agent costs tens of microseconds of regexes and repeats on every
// request of the browser.
//
// It is two generations of at most size/2 entries each: a hit in the old
// generation moves to the current one, and when the current one is full
// it becomes the old one (the previous old one is dropped). So at most
// size entries are kept, and a value used since the last turn survives.
type cleanCache struct {
	mu       sync.Mutex
	half     int
	cur, old map[string]struct{}
}

func newCleanCache(size int) *cleanCache {
	return &cleanCache{half: max(1, size/2)}
}

// has reports whether key is a known clean value.
func (c *cleanCache) has(key []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[string(key)]; ok {
		return true
	}
	if _, ok := c.old[string(key)]; ok {
		c.addLocked(string(key))
		return true
	}
	return false
}

// add remembers key as clean.
func (c *cleanCache) add(key []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(string(key))
}

func (c *cleanCache) addLocked(key string) {
	if _, ok := c.cur[key]; ok {
		return
	}
	if len(c.cur) >= c.half || c.cur == nil {
		c.old, c.cur = c.cur, make(map[string]struct{}, c.half)
	}
	c.cur[key] = struct{}{}
}

// len is the number of values kept (tests).
func (c *cleanCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.cur)
	for k := range c.old {
		if _, ok := c.cur[k]; !ok {
			n++
		}
	}
	return n
}

// cleanKey is the cache key of a value: its kind, its plus flag, then
// its bytes, appended to buf.
func cleanKey(buf []byte, kind kindMask, plus bool, raw string) []byte {
	f := byte(0)
	if plus {
		f = 1
	}
	buf = append(buf, byte(kind), byte(kind>>8), f)
	return append(buf, raw...)
}

// buildCleanCaches makes one cache per rule mask the detector hands out
// unchanged (every service's; path overrides merge a fresh mask per
// request, and those requests are not cached).
func (d *Detector) buildCleanCaches() {
	if d.cfg.CleanCacheSize < 0 {
		return
	}
	size := d.cfg.CleanCacheSize
	if size == 0 {
		size = DefaultCleanCacheSize
	}
	d.clean = map[*bool]*cleanCache{}
	add := func(m []bool) {
		if len(m) == 0 {
			return
		}
		if _, ok := d.clean[unsafe.SliceData(m)]; !ok {
			d.clean[unsafe.SliceData(m)] = newCleanCache(size)
		}
	}
	add(d.disabledAll)
	for _, m := range d.disabled {
		add(m)
	}
}

// cleanFor returns the cache of mask, nil when it has none.
func (d *Detector) cleanFor(mask []bool) *cleanCache {
	if len(mask) == 0 || d.clean == nil {
		return nil
	}
	return d.clean[unsafe.SliceData(mask)]
}
