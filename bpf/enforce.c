// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/*
 * enforce.c - synchronous verdicts at TC, for the agent's protect mode.
 *
 * Ingress: the first segment of each plaintext HTTP request is matched
 * against a small compiled rule set (method + path prefix denies and
 * case-insensitive literal signatures in the request line and first
 * headers). A drop rule drops the segment - the application never receives
 * the request - and flags the flow; the agent then aborts the socket with
 * bpf_sock_destroy (reset.c), so the client sees a reset.
 * Both directions: every packet of a flagged flow is dropped. This is how
 * a verdict reached elsewhere (the agent's detector, the TLS probes) stops a
 * flow: at egress no response byte leaves.
 *
 * The programs drop only what a rule or a flagged flow names; an empty rule
 * set and an empty flag map pass everything.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "enforce_types.h"
#include "skb_tcp.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Open-coded numeric iterator (Linux >= 6.4): the verifier checks the loop
 * body once instead of once per iteration, which a 512-byte scan needs. */
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

#define TCX_NEXT_ -1
#define TCX_DROP_ 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ENFORCE_MAX_RULES);
	__type(key, __u32);
	__type(value, struct enforce_rule);
} enforce_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enforce_config);
} enforce_settings SEC(".maps");

/* Per-service mode in the kernel: the agent maps the server ports of
 * services whose mode differs from the global one to the action their
 * matches take (a monitor service under global protect only counts). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ENFORCE_MAX_PORT_MODES);
	__type(key, __u16);
	__type(value, __u8);
} port_modes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ENFORCE_MAX_FLAGGED);
	__type(key, struct flow_key);
	__type(value, struct enforce_flag);
} flagged_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} enforce_events SEC(".maps");

/* Scan buffer, twice ENFORCE_MAX_SCAN so a pattern compare starting at any
 * scanned position stays inside it without a second bounds check. */
struct scan_buf {
	__u8 b[2 * ENFORCE_MAX_SCAN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scan_buf);
} scan_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ENF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} enforce_counters SEC(".maps");

/* Keep the enums in BTF so bpf2go gives Go their names. */
const enum enforce_counter enforce_counter_btf_anchor __attribute__((unused)) = ENF_CNT_MAX;
const enum enforce_kind enforce_kind_btf_anchor __attribute__((unused)) = ENFORCE_KIND_PREFIX;
const enum enforce_action enforce_action_btf_anchor __attribute__((unused)) = ENFORCE_ACT_DROP;
const enum enforce_reason enforce_reason_btf_anchor __attribute__((unused)) = ENFORCE_REASON_KERNEL_RULE;
struct enforce_event *const enforce_event_btf_anchor __attribute__((unused)) = 0;

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&enforce_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline __u8 lower(__u8 c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* method_len returns the length of a known HTTP method at the start of buf
 * followed by a space, or 0: only segments that start a request are scanned. */
static __always_inline __u32 method_len(const __u8 *b)
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
		if (lower(c->buf->b[base + j]) != (__u8)r->pattern[j])
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
		__u32 pair = (__u32)lower(c->buf->b[pos]) << 8 | lower(c->buf->b[pos + 1]);
		if (!(c->cfg->first_pairs[(pair >> 3) & (ENFORCE_PAIR_BITMAP_BYTES - 1)] & (1 << (pair & 7))))
			continue;
		struct pos_ctx p = { .c = c, .pos = pos };
		bpf_loop(n, literal_rule_cb, &p, 0);
		if (c->matched >= 0)
			break;
	}
	bpf_iter_num_destroy(&it);
}

static __always_inline void report(struct skb_tcp *t, struct __sk_buff *skb,
				   struct scan_buf *buf, __u32 len,
				   struct enforce_rule *r, __u8 action)
{
	struct enforce_event *ev = bpf_ringbuf_reserve(&enforce_events, sizeof(*ev), 0);
	if (!ev) {
		count(ENF_CNT_EVENTS_LOST);
		return;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->key = t->key;
	ev->rule_id = r->id;
	ev->ifindex = skb->ifindex;
	ev->action = action;
	ev->len = len < ENFORCE_EVIDENCE ? len : ENFORCE_EVIDENCE;
	__builtin_memcpy(ev->data, buf->b, ENFORCE_EVIDENCE);
	bpf_ringbuf_submit(ev, 0);
}

/* flagged reports whether either orientation of the flow is flagged. */
static __always_inline int flagged(const struct flow_key *k)
{
	struct flow_key rev = {};

	if (bpf_map_lookup_elem(&flagged_flows, k))
		return 1;
	flow_key_reverse(k, &rev);
	return bpf_map_lookup_elem(&flagged_flows, &rev) != 0;
}

SEC("tcx/ingress")
int enforce_ingress(struct __sk_buff *skb)
{
	struct skb_tcp t = {};
	__u32 zero = 0;

	if (!skb_parse_tcp(skb, &t))
		return TCX_NEXT_;
	if (flagged(&t.key)) {
		count(ENF_CNT_FLAGGED_DROP_INGRESS);
		return TCX_DROP_;
	}
	if (t.payload_len < 16)
		return TCX_NEXT_;

	struct enforce_config *cfg = bpf_map_lookup_elem(&enforce_settings, &zero);
	if (!cfg || cfg->rule_count == 0)
		return TCX_NEXT_;
	struct scan_buf *buf = bpf_map_lookup_elem(&scan_scratch, &zero);
	if (!buf)
		return TCX_NEXT_;

	__u32 len = t.payload_len < ENFORCE_MAX_SCAN ? t.payload_len : ENFORCE_MAX_SCAN;
	/* Load a fixed-size prefix first (cheap, verifier-friendly), then the
	 * real length; zero the tail so stale bytes of an earlier packet can
	 * never match. */
	if (bpf_skb_load_bytes(skb, t.payload_off, buf->b, 16) < 0)
		return TCX_NEXT_;
	__u32 mlen = method_len(buf->b);
	if (!mlen)
		return TCX_NEXT_;
	__builtin_memset(buf->b + ENFORCE_MAX_SCAN, 0, 64);
	__u32 cp = len - 1;
	barrier_var(cp);
	cp = (cp & (ENFORCE_MAX_SCAN - 1)) + 1;
	if (bpf_skb_load_bytes(skb, t.payload_off, buf->b, cp) < 0)
		return TCX_NEXT_;
	count(ENF_CNT_REQUESTS_INSPECTED);

	struct scan_ctx c = {
		.buf = buf, .cfg = cfg, .len = cp, .mlen = mlen,
		.dport = t.key.dport, .matched = -1,
	};
	__u32 n = cfg->rule_count;
	if (n > ENFORCE_MAX_RULES)
		n = ENFORCE_MAX_RULES;
	bpf_loop(n, prefix_rule_cb, &c, 0);
	if (c.matched < 0)
		scan_literals(&c);
	if (c.matched < 0)
		return TCX_NEXT_;

	__u32 idx = c.matched;
	struct enforce_rule *r = bpf_map_lookup_elem(&enforce_rules, &idx);
	if (!r)
		return TCX_NEXT_;
	__u8 action = r->action;
	__u16 dport = t.key.dport;
	__u8 *override = bpf_map_lookup_elem(&port_modes, &dport);
	if (override)
		action = *override;
	report(&t, skb, buf, cp, r, action);
	if (action != ENFORCE_ACT_DROP) {
		count(ENF_CNT_MATCH_COUNTED);
		return TCX_NEXT_;
	}
	struct enforce_flag f = {
		.ts_ns = bpf_ktime_get_ns(), .rule_id = r->id,
		.reason = ENFORCE_REASON_KERNEL_RULE,
	};
	bpf_map_update_elem(&flagged_flows, &t.key, &f, BPF_ANY);
	count(ENF_CNT_MATCH_DROPPED);
	return TCX_DROP_;
}

SEC("tcx/egress")
int enforce_egress(struct __sk_buff *skb)
{
	struct skb_tcp t = {};

	if (!skb_parse_tcp(skb, &t))
		return TCX_NEXT_;
	if (flagged(&t.key)) {
		count(ENF_CNT_FLAGGED_DROP_EGRESS);
		return TCX_DROP_;
	}
	return TCX_NEXT_;
}
