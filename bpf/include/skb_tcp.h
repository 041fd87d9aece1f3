/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * skb_tcp.h - find the TCP flow key and payload of an skb with
 * bpf_skb_load_bytes (works on non-linear skbs). Enough for verdicts: IPv4
 * with options and IPv6 without extension headers; anything else is "not
 * TCP" and the caller lets it pass.
 */
#ifndef APIWARDEN_SKB_TCP_H
#define APIWARDEN_SKB_TCP_H

#include "apiwarden_events.h"

#define SKB_ETH_HLEN 14
#define SKB_ETH_P_IP 0x0800
#define SKB_ETH_P_IPV6 0x86DD
#define SKB_IPPROTO_TCP 6

struct skb_tcp {
	struct flow_key key; /* sender -> receiver, ports in host order */
	__u32 payload_off;
	__u32 payload_len;
	__u8 flags;          /* AW_TCP_* */
};

/* skb_parse_tcp returns 1 and fills t for a TCP segment, 0 otherwise. */
static __always_inline int skb_parse_tcp(struct __sk_buff *skb, struct skb_tcp *t)
{
	__u16 proto;
	__u32 l4, end;

	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0)
		return 0;
	if (proto == bpf_htons(SKB_ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, SKB_ETH_HLEN, &ip, sizeof(ip)) < 0)
			return 0;
		if (ip.protocol != SKB_IPPROTO_TCP || ip.ihl < 5 ||
		    (bpf_ntohs(ip.frag_off) & 0x1FFF))
			return 0;
		__builtin_memcpy(t->key.saddr, &ip.saddr, 4);
		__builtin_memcpy(t->key.daddr, &ip.daddr, 4);
		t->key.family = AW_AF_INET;
		l4 = SKB_ETH_HLEN + (__u32)ip.ihl * 4;
		end = ip.tot_len ? SKB_ETH_HLEN + bpf_ntohs(ip.tot_len) : skb->len;
	} else if (proto == bpf_htons(SKB_ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, SKB_ETH_HLEN, &ip6, sizeof(ip6)) < 0)
			return 0;
		if (ip6.nexthdr != SKB_IPPROTO_TCP)
			return 0;
		__builtin_memcpy(t->key.saddr, &ip6.saddr, 16);
		__builtin_memcpy(t->key.daddr, &ip6.daddr, 16);
		t->key.family = AW_AF_INET6;
		l4 = SKB_ETH_HLEN + sizeof(ip6);
		end = ip6.payload_len ? l4 + bpf_ntohs(ip6.payload_len) : skb->len;
	} else {
		return 0;
	}
	if (end > skb->len)
		end = skb->len;

	struct tcphdr tcp;
	if (bpf_skb_load_bytes(skb, l4, &tcp, sizeof(tcp)) < 0)
		return 0;
	__u32 doff = (__u32)tcp.doff * 4;
	if (doff < sizeof(tcp) || l4 + doff > end)
		return 0;
	t->key.sport = bpf_ntohs(tcp.source);
	t->key.dport = bpf_ntohs(tcp.dest);
	t->payload_off = l4 + doff;
	t->payload_len = end - t->payload_off;
	t->flags = ((__u8 *)&tcp)[13] & 0x1F;
	return 1;
}

/* flow_key_reverse swaps the two ends of a key. */
static __always_inline void flow_key_reverse(const struct flow_key *in, struct flow_key *out)
{
	__builtin_memcpy(out->saddr, in->daddr, 16);
	__builtin_memcpy(out->daddr, in->saddr, 16);
	out->sport = in->dport;
	out->dport = in->sport;
	out->family = in->family;
}

#endif
