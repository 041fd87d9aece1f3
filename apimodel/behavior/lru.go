package behavior

import "container/list"

// lru is a map bounded to max entries; adding past the bound evicts the
// least recently used one, so memory follows configuration, not traffic.
type lru[K comparable, V any] struct {
	max     int
	ll      *list.List
	m       map[K]*list.Element
	evicted uint64
}

type lruEntry[K comparable, V any] struct {
	k K
	v V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, ll: list.New(), m: make(map[K]*list.Element)}
}

// get returns the value of k, creating it with mk when absent.
func (l *lru[K, V]) get(k K, mk func() V) V {
	if e, ok := l.m[k]; ok {
		l.ll.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).v
	}
	if l.ll.Len() >= l.max {
		old := l.ll.Back()
		delete(l.m, old.Value.(*lruEntry[K, V]).k)
		l.ll.Remove(old)
		l.evicted++
	}
	v := mk()
	l.m[k] = l.ll.PushFront(&lruEntry[K, V]{k, v})
	return v
}

func (l *lru[K, V]) peek(k K) (V, bool) {
	if e, ok := l.m[k]; ok {
		return e.Value.(*lruEntry[K, V]).v, true
	}
	var zero V
	return zero, false
}

func (l *lru[K, V]) len() int { return l.ll.Len() }

func (l *lru[K, V]) each(fn func(K, V)) {
	for e := l.ll.Front(); e != nil; e = e.Next() {
		en := e.Value.(*lruEntry[K, V])
		fn(en.k, en.v)
	}
}
