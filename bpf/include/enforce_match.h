/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * enforce_match.h - the kernel rule match, one implementation for every
 * place a request's first bytes are seen: a TCP segment at TC (enforce.c,
 * bytes loaded from the skb) and the decrypted return of a TLS read
 * (tls.c, bytes read from user memory). Only where the bytes come from
 * differs (struct enforce_src); scanning, the port-mode override, the event
 * and the flag are shared, so a rule means the same thing on both paths.
 *
 * Includers need vmlinux.h and bpf_helpers.h first.
 */
#ifndef APIWARDEN_ENFORCE_MATCH_H
#define APIWARDEN_ENFORCE_MATCH_H

#include "enforce_maps.h"

/* Open-coded numeric iterator (Linux >= 6.4): the verifier checks the loop
 * body once instead of once per iteration, which a 512-byte scan needs. */
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

/* Bytes needed to recognise a request start (and the least a scanned
 * segment or read must carry). */
#define ENFORCE_MIN_REQUEST 16

/* Scan buffer, twice ENFORCE_MAX_SCAN so a pattern compare starting at any
 * scanned position stays inside it without a second bounds check. */
struct scan_buf {
	__u8 b[2 * ENFORCE_MAX_SCAN];
};

/* Private to each object (never shared): per-CPU scratch. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scan_buf);
} scan_scratch SEC(".maps");

static __always_inline void enforce_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&enforce_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline __u8 enforce_lower(__u8 c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* enforce_method_len returns the length of a known HTTP method at the start
 * of b followed by a space, or 0: only bytes that start a request are
 * scanned. b holds at least ENFORCE_MIN_REQUEST bytes. */
static __always_inline __u32 enforce_method_len(const __u8 *b)
{
	if (b[0] == 'G' && b[1] == 'E' && b[2] == 'T' && b[3] == ' ')
		return 3;
	if (b[0] == 'P' && b[1] == 'U' && b[2] == 'T' && b[3] == ' ')
		return 3;
	if (b[0] == 'P' && b[1] == 'O' && b[2] == 'S' && b[3] == 'T' && b[4] == ' ')
		return 4;
	if (b[0] == 'H' && b[1] == 'E' && b[2] == 'A' && b[3] == 'D' && b[4] == ' ')
		return 4;
	if (b[0] == 'P' && b[1] == 'A' && b[2] == 'T' && b[3] == 'C' && b[4] == 'H' && b[5] == ' ')
		return 5;
	if (b[0] == 'D' && b[1] == 'E' && b[2] == 'L' && b[3] == 'E' && b[4] == 'T' &&
	    b[5] == 'E' && b[6] == ' ')
		return 6;
	if (b[0] == 'O' && b[1] == 'P' && b[2] == 'T' && b[3] == 'I' && b[4] == 'O' &&
	    b[5] == 'N' && b[6] == 'S' && b[7] == ' ')
		return 7;
	return 0;
}

struct scan_ctx {
	struct scan_buf *buf;
	struct enforce_config *cfg;
	__u32 len;      /* bytes valid in buf */
	__u32 mlen;     /* method length */
	__u16 dport;
	__s32 matched;  /* rule index, -1 = none */
};

/* rule_applies checks the port scope of a rule. */
static __always_inline int rule_applies(const struct enforce_rule *r, __u16 dport)
{
	return r->port == 0 || r->port == dport;
}

/* prefix_rule_cb tests rule i as a method + path prefix rule. */
static long prefix_rule_cb(__u32 i, struct scan_ctx *c)
{
	struct enforce_rule *r = bpf_map_lookup_elem(&enforce_rules, &i);
	if (!r || r->kind != ENFORCE_KIND_PREFIX || !rule_applies(r, c->dport))
		return 0;
	if (r->method_len) {
		if (r->method_len != c->mlen)
			return 0;
		for (int j = 0; j < 8; j++) {
			if (j >= r->method_len)
				break;
			if (c->buf->b[j] != (__u8)r->method[j])
				return 0;
		}
	}
	__u32 start = c->mlen + 1;
	if (start + r->pattern_len > c->len)
		return 0;
	for (int j = 0; j < ENFORCE_MAX_PATTERN; j++) {
		if (j >= r->pattern_len)
			break;
		if (c->buf->b[(start + j) & (2 * ENFORCE_MAX_SCAN - 1)] != (__u8)r->pattern[j])
			return 0;
	}
	c->matched = i;
	return 1;
}

struct pos_ctx {
	struct scan_ctx *c;
	__u32 pos;
};

/* literal_rule_cb tests rule i as a literal at position p->pos. */
static long literal_rule_cb(__u32 i, struct pos_ctx *p)
{
	struct scan_ctx *c = p->c;
	struct enforce_rule *r = bpf_map_lookup_elem(&enforce_rules, &i);
	if (!r || r->kind != ENFORCE_KIND_LITERAL || !rule_applies(r, c->dport))
		return 0;
	if (p->pos + r->pattern_len > c->len)
		return 0;
	__u32 base = p->pos & (ENFORCE_MAX_SCAN - 1);
	for (int j = 0; j < ENFORCE_MAX_PATTERN; j++) {
		if (j >= r->pattern_len)
			break;
		if (enforce_lower(c->buf->b[base + j]) != (__u8)r->pattern[j])
			return 0;
	}
	c->matched = i;
	return 1;
}

/* scan_literals walks the scanned bytes once. A position is looked at more
 * closely (every literal rule, through bpf_loop) only when its two bytes
 * start some literal, which the pair bitmap answers with one bit test. */
static __always_inline void scan_literals(struct scan_ctx *c)
{
	struct bpf_iter_num it;
	__u32 n = c->cfg->rule_count;
	int *v;

	if (n > ENFORCE_MAX_RULES)
		n = ENFORCE_MAX_RULES;
	bpf_iter_num_new(&it, 0, ENFORCE_MAX_SCAN - 1);
	while ((v = bpf_iter_num_next(&it))) {
		__u32 pos = *v;

		if (pos >= ENFORCE_MAX_SCAN - 1 || pos + 1 >= c->len)
			break;
		__u32 pair = (__u32)enforce_lower(c->buf->b[pos]) << 8 | enforce_lower(c->buf->b[pos + 1]);
		if (!(c->cfg->first_pairs[(pair >> 3) & (ENFORCE_PAIR_BITMAP_BYTES - 1)] & (1 << (pair & 7))))
			continue;
		struct pos_ctx p = { .c = c, .pos = pos };
		bpf_loop(n, literal_rule_cb, &p, 0);
		if (c->matched >= 0)
			break;
	}
	bpf_iter_num_destroy(&it);
}

/* Where the bytes of a request come from. */
enum enforce_src_kind {
	ENFORCE_SRC_SKB = 1,  /* a TC segment: bpf_skb_load_bytes */
	ENFORCE_SRC_USER = 2, /* a process's buffer: bpf_probe_read_user */
};

/* Bytes a user source may carry over from earlier short reads of the same
 * stream: less than ENFORCE_MIN_REQUEST, or they would have been matched. */
#define ENFORCE_MAX_CARRY (ENFORCE_MIN_REQUEST - 1)

struct enforce_src {
	int kind;                 /* enum enforce_src_kind; a constant per call site */
	struct __sk_buff *skb;    /* ENFORCE_SRC_SKB */
	__u32 off;                /* ENFORCE_SRC_SKB: payload offset */
	__u32 carry_len;          /* ENFORCE_SRC_USER: carry bytes that come first */
	__u64 uptr;               /* ENFORCE_SRC_USER: buffer address */
	__u8 carry[ENFORCE_MIN_REQUEST];
};

/* enforce_fill copies the first total (1..ENFORCE_MAX_SCAN) bytes of the
 * source into buf. The kind is a constant at every (inlined) call site, so
 * the compiler drops the other branch and a uprobe program never
 * references an skb helper. */
static __always_inline long enforce_fill(const struct enforce_src *s, struct scan_buf *buf, __u32 total)
{
	if (s->kind == ENFORCE_SRC_SKB)
		return bpf_skb_load_bytes(s->skb, s->off, buf->b, total);
	__u32 k = s->carry_len & ENFORCE_MAX_CARRY;
	if (k >= total)
		return -1;
	if (k)
		__builtin_memcpy(buf->b, s->carry, ENFORCE_MIN_REQUEST);
	__u32 n = total - k;
	barrier_var(n);
	if (n > ENFORCE_MAX_SCAN)
		n = ENFORCE_MAX_SCAN;
	return bpf_probe_read_user(buf->b + k, n, (const void *)s->uptr);
}

/* enforce_active returns the rule-set state when any rule is loaded. */
static __always_inline struct enforce_config *enforce_active(void)
{
	__u32 zero = 0;
	struct enforce_config *cfg = bpf_map_lookup_elem(&enforce_settings, &zero);

	return cfg && cfg->rule_count ? cfg : 0;
}

/* enforce_verdict is what a match decided. */
struct enforce_verdict {
	struct scan_buf *buf;   /* scanned bytes (evidence) */
	__u32 len;              /* bytes valid in buf */
	__u32 rule_id;
	__u8 action;            /* enum enforce_action, port override applied */
};

/* enforce_match runs the rule set on the first bytes of a request: avail is
 * how many bytes the source holds (carry included), dport the server port (rule scope and
 * port_modes). Returns 1 and fills v on a match, 0 otherwise (no rules, not
 * a request start, no match). */
static __always_inline int enforce_match(const struct enforce_src *src, __u32 avail,
					 __u16 dport, struct enforce_verdict *v)
{
	__u32 zero = 0;

	if (avail < ENFORCE_MIN_REQUEST)
		return 0;
	struct enforce_config *cfg = enforce_active();
	if (!cfg)
		return 0;
	struct scan_buf *buf = bpf_map_lookup_elem(&scan_scratch, &zero);
	if (!buf)
		return 0;

	__u32 len = avail < ENFORCE_MAX_SCAN ? avail : ENFORCE_MAX_SCAN;
	/* Load a fixed-size prefix first (cheap, verifier-friendly), then the
	 * real length; zero the tail so stale bytes of an earlier request can
	 * never match. */
	if (enforce_fill(src, buf, ENFORCE_MIN_REQUEST) < 0)
		return 0;
	__u32 mlen = enforce_method_len(buf->b);
	if (!mlen)
		return 0;
	__builtin_memset(buf->b + ENFORCE_MAX_SCAN, 0, 64);
	__u32 cp = len - 1;
	barrier_var(cp);
	cp = (cp & (ENFORCE_MAX_SCAN - 1)) + 1;
	if (enforce_fill(src, buf, cp) < 0)
		return 0;
	enforce_count(ENF_CNT_REQUESTS_INSPECTED);

	struct scan_ctx c = {
		.buf = buf, .cfg = cfg, .len = cp, .mlen = mlen,
		.dport = dport, .matched = -1,
	};
	__u32 n = cfg->rule_count;
	if (n > ENFORCE_MAX_RULES)
		n = ENFORCE_MAX_RULES;
	bpf_loop(n, prefix_rule_cb, &c, 0);
	if (c.matched < 0)
		scan_literals(&c);
	if (c.matched < 0)
		return 0;

	__u32 idx = c.matched;
	struct enforce_rule *r = bpf_map_lookup_elem(&enforce_rules, &idx);
	if (!r)
		return 0;
	v->buf = buf;
	v->len = cp;
	v->rule_id = r->id;
	v->action = r->action;
	__u8 *override = bpf_map_lookup_elem(&port_modes, &dport);
	if (override)
		v->action = *override;
	return 1;
}

/* enforce_report puts a match into enforce_events (key: client -> server). */
static __always_inline void enforce_report(const struct flow_key *key, __u32 ifindex,
					   const struct enforce_verdict *v)
{
	struct enforce_event *ev = bpf_ringbuf_reserve(&enforce_events, sizeof(*ev), 0);
	if (!ev) {
		enforce_count(ENF_CNT_EVENTS_LOST);
		return;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->key = *key;
	ev->rule_id = v->rule_id;
	ev->ifindex = ifindex;
	ev->action = v->action;
	ev->len = v->len < ENFORCE_EVIDENCE ? v->len : ENFORCE_EVIDENCE;
	__builtin_memcpy(ev->data, v->buf->b, ENFORCE_EVIDENCE);
	bpf_ringbuf_submit(ev, 0);
}

/* enforce_apply reports a match and, for a drop, flags the flow (key:
 * client -> server) so TC drops its every further packet both ways.
 * Returns 1 when the flow was flagged. */
static __always_inline int enforce_apply(const struct flow_key *key, __u32 ifindex,
					 const struct enforce_verdict *v, __u32 reason)
{
	if (v->action != ENFORCE_ACT_DROP) {
		enforce_report(key, ifindex, v);
		enforce_count(ENF_CNT_MATCH_COUNTED);
		return 0;
	}
	/* Flag before reporting: the flag is what stops the flow, and the
	 * agent reacting to the event must find it in place. */
	struct enforce_flag f = {
		.ts_ns = bpf_ktime_get_ns(), .rule_id = v->rule_id, .reason = reason,
	};
	bpf_map_update_elem(&flagged_flows, key, &f, BPF_ANY);
	enforce_report(key, ifindex, v);
	enforce_count(ENF_CNT_MATCH_DROPPED);
	return 1;
}

#endif
