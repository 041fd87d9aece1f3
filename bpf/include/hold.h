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
 * TLS: the request is decrypted only once the server has read it, so what
 * is held is the response. The TLS read probe (tls.c), when a protect-mode
 * server reads request bytes, advances hold_tls_read[client->server] to the
 * stream offset past them; the agent, once the detector has been through
 * those bytes, advances hold_tls_judged[client->server] to the same offset.
 * While read is ahead of judged, every server->client data segment (and
 * FIN) of the flow is marked at tcx ingress of the interface it enters by
 * (the host side of a container's veth, or lo), and the same queue rule
 * hands it to the agent, which releases it once the flow is judged past the
 * read offset, or drops it when the request was cut.
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

/* Flows of protect-mode TLS servers with a read offset (LRU: at the bound
 * the oldest flow is forgotten and its responses pass unheld). */
#define HOLD_MAX_TLS_FLOWS 16384

/* client->server flow -> TLS stream offset past the request bytes the
 * server has read (written by tls.c). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HOLD_MAX_TLS_FLOWS);
	__type(key, struct flow_key);
	__type(value, __u32);
} hold_tls_read SEC(".maps");

/* client->server flow -> TLS stream offset up to which the agent has
 * judged the decrypted request bytes (written by the agent). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HOLD_MAX_TLS_FLOWS);
	__type(key, struct flow_key);
	__type(value, __u32);
} hold_tls_judged SEC(".maps");

/* hold_seq_before: a < b in 32-bit stream offset space. */
static __always_inline int hold_seq_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

/* hold_active returns the mark when holding is on and port is held. */
static __always_inline __u32 hold_active(__u16 port)
{
	__u32 zero = 0;

	struct hold_config *cfg = bpf_map_lookup_elem(&hold_settings, &zero);
	if (!cfg || !cfg->mark)
		return 0;
	if (!bpf_map_lookup_elem(&hold_ports, &port))
		return 0;
	return cfg->mark;
}

/* hold_tls_note records that the server end of key (client -> server) has
 * read its TLS stream up to end. Returns 1 when the flow is held (the
 * caller wakes the agent's reader at once). */
static __always_inline int hold_tls_note(const struct flow_key *key, __u32 end)
{
	if (!hold_active(key->dport))
		return 0;
	__u32 *cur = bpf_map_lookup_elem(&hold_tls_read, key);
	if (cur) {
		/* Two reads of one stream racing: keep the larger offset. */
		if (hold_seq_before(*cur, end))
			*cur = end;
	} else {
		bpf_map_update_elem(&hold_tls_read, key, &end, BPF_ANY);
	}
	return 1;
}

/* hold_mark_tls_response marks a server->client data segment or FIN of a
 * held TLS flow whose read requests are not all judged yet. Returns 1 when
 * marked. */
static __always_inline int hold_mark_tls_response(struct __sk_buff *skb, const struct skb_tcp *t)
{
	struct flow_key rev = {};

	if (t->flags & (AW_TCP_RST | AW_TCP_SYN))
		return 0;
	if (t->payload_len == 0 && !(t->flags & AW_TCP_FIN))
		return 0;
	__u32 mark = hold_active(t->key.sport);
	if (!mark)
		return 0;
	flow_key_reverse(&t->key, &rev);
	__u32 *read = bpf_map_lookup_elem(&hold_tls_read, &rev);
	if (!read)
		return 0;
	__u32 r = *read;
	__u32 *judged = bpf_map_lookup_elem(&hold_tls_judged, &rev);
	if (judged && !hold_seq_before(*judged, r))
		return 0;
	skb->mark |= mark;
	return 1;
}

/* hold_mark_skb marks a client->server data segment of a held port for the
 * verdict queue, preserving the other mark bits. Returns 1 when marked. */
static __always_inline int hold_mark_skb(struct __sk_buff *skb, const struct skb_tcp *t)
{
	if (t->payload_len == 0 || (t->flags & (AW_TCP_RST | AW_TCP_SYN)))
		return 0;
	__u32 mark = hold_active(t->key.dport);
	if (!mark)
		return 0;
	/* A flow whose server reads it through a TLS library (the read probe
	 * noted it) is held at its responses: its encrypted request bytes
	 * tell the detector nothing, and holding them only adds the wire
	 * pipeline's delay. Only the TLS probe writes this map, so a
	 * plaintext flow can never opt out. */
	if (bpf_map_lookup_elem(&hold_tls_read, &t->key))
		return 0;
	skb->mark |= mark;
	return 1;
}

#endif
