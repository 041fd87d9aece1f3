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
 * Both directions: every packet of a flagged flow is dropped (but a new
 * connection's SYN on the same 4-tuple, see flagged()). This is how
 * a verdict reached elsewhere (the agent's detector, the TLS probes) stops a
 * flow: at egress no response byte leaves.
 *
 * The programs drop only what a rule or a flagged flow names; an empty rule
 * set and an empty flag map pass everything.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "enforce_match.h"
#include "skb_tcp.h"
#include "hold.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define TCX_NEXT_ -1
#define TCX_DROP_ 2

/* Keep the enums in BTF so bpf2go gives Go their names. */
const enum enforce_counter enforce_counter_btf_anchor __attribute__((unused)) = ENF_CNT_MAX;
const enum enforce_kind enforce_kind_btf_anchor __attribute__((unused)) = ENFORCE_KIND_PREFIX;
const enum enforce_action enforce_action_btf_anchor __attribute__((unused)) = ENFORCE_ACT_DROP;
const enum enforce_reason enforce_reason_btf_anchor __attribute__((unused)) = ENFORCE_REASON_KERNEL_RULE;
struct enforce_event *const enforce_event_btf_anchor __attribute__((unused)) = 0;

/* flagged reports whether either orientation of the flow is flagged and
 * so its packet must be dropped. A SYN without ACK opens a new connection
 * on a 4-tuple whose flagged predecessor is gone: past the grace period it
 * clears the flag (both orientations) and passes, otherwise a client that
 * reuses a cut connection's port could never connect again (the LRU map
 * forgets a flag only under pressure). */
static __always_inline int flagged(const struct flow_key *k, __u8 tcp_flags)
{
	struct flow_key rev = {};
	struct enforce_flag *f;

	f = bpf_map_lookup_elem(&flagged_flows, k);
	if (!f) {
		flow_key_reverse(k, &rev);
		f = bpf_map_lookup_elem(&flagged_flows, &rev);
	}
	if (!f)
		return 0;
	if ((tcp_flags & (AW_TCP_SYN | AW_TCP_ACK)) != AW_TCP_SYN ||
	    bpf_ktime_get_ns() - f->ts_ns < ENFORCE_FLAG_SYN_GRACE_NS)
		return 1;
	flow_key_reverse(k, &rev);
	bpf_map_delete_elem(&flagged_flows, k);
	bpf_map_delete_elem(&flagged_flows, &rev);
	enforce_count(ENF_CNT_FLAG_CLEARED_SYN);
	return 0;
}

SEC("tcx/ingress")
int enforce_ingress(struct __sk_buff *skb)
{
	struct skb_tcp t = {};
	struct enforce_verdict v = {};

	if (!skb_parse_tcp(skb, &t))
		return TCX_NEXT_;
	/* A RST of a flagged flow passes: it carries no data, and it is how a
	 * socket the agent destroyed tells its peer (the client, often in
	 * another namespace) that the connection is gone. */
	if (!(t.flags & AW_TCP_RST) && flagged(&t.key, t.flags)) {
		enforce_count(ENF_CNT_FLAGGED_DROP_INGRESS);
		return TCX_DROP_;
	}
	struct enforce_src src = { .kind = ENFORCE_SRC_SKB, .skb = skb, .off = t.payload_off };
	if (enforce_match(&src, t.payload_len, t.key.dport, &v) &&
	    enforce_apply(&t.key, skb->ifindex, &v, ENFORCE_REASON_KERNEL_RULE))
		return TCX_DROP_;
	/* What the first-segment rules let through waits for the full
	 * detector in the agent's verdict queue (hold.h). */
	if (hold_mark_skb(skb, &t))
		enforce_count(ENF_CNT_HOLD_MARKED);
	/* A TLS server's response, while the request it read waits for its
	 * verdict (the server's side of a container's veth, or lo). */
	else if (hold_mark_tls_response(skb, &t))
		enforce_count(ENF_CNT_HOLD_TLS_MARKED);
	return TCX_NEXT_;
}

SEC("tcx/egress")
int enforce_egress(struct __sk_buff *skb)
{
	struct skb_tcp t = {};

	if (!skb_parse_tcp(skb, &t))
		return TCX_NEXT_;
	if (!(t.flags & AW_TCP_RST) && flagged(&t.key, t.flags)) {
		enforce_count(ENF_CNT_FLAGGED_DROP_EGRESS);
		return TCX_DROP_;
	}
	return TCX_NEXT_;
}
