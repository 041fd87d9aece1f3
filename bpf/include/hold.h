/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * hold.h - the hold point of protect mode: which segments the kernel hands
 * to the agent's verdict queue before the socket sees them.
 *
 * The tcx ingress verdict program (enforce.c) sets a mark bit on every
 * client->server data segment of a protect-mode service port; an nftables
 * rule of the agent (prerouting, `meta mark & bit == bit queue ... bypass`)
 * queues exactly those packets to the agent over NFQUEUE, which releases
 * them once the detector has judged the request bytes up to the segment's
 * end, or drops them (a cut). The kernel cannot tell which segment completes
 * a request, so every data segment is marked; the agent releases the others
 * at once. Pure ACKs, RSTs, responses and monitor-mode services are never
 * marked, so they never reach the queue.
 *
 * Nothing here can block traffic on its own: without the agent's rule the
 * mark means nothing, and the rule's `bypass` accepts packets when no agent
 * listens on the queue.
 *
 * Includers need vmlinux.h and bpf_helpers.h first.
 */
#ifndef APIWARDEN_HOLD_H
#define APIWARDEN_HOLD_H

#include "skb_tcp.h"

/* Server ports whose requests are held (protect-mode services). */
#define HOLD_MAX_PORTS 256

struct hold_config {
	__u32 mark; /* the bit(s) to set; 0: holding off */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hold_config);
} hold_settings SEC(".maps");

/* port -> 1 for every listening port of a protect-mode service. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HOLD_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} hold_ports SEC(".maps");

/* hold_mark_skb marks a client->server data segment of a held port for the
 * verdict queue, preserving the other mark bits. Returns 1 when marked. */
static __always_inline int hold_mark_skb(struct __sk_buff *skb, const struct skb_tcp *t)
{
	__u32 zero = 0;

	if (t->payload_len == 0 || (t->flags & (AW_TCP_RST | AW_TCP_SYN)))
		return 0;
	struct hold_config *cfg = bpf_map_lookup_elem(&hold_settings, &zero);
	if (!cfg || !cfg->mark)
		return 0;
	__u16 port = t->key.dport;
	if (!bpf_map_lookup_elem(&hold_ports, &port))
		return 0;
	skb->mark |= cfg->mark;
	return 1;
}

#endif
