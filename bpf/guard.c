// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/*
 * guard.c - drop traffic from blocked or over-rate sources as early as the
 * kernel allows. The same decision runs as XDP (line rate on NICs with
 * native XDP) and as tcx ingress (where XDP has no edge, e.g. veth, or where
 * only generic XDP exists). Both only ever drop a source that a blocklist
 * entry or the configured rate names; anything they cannot parse passes
 * (fail open).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "guard_types.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define AF_INET_ 2
#define AF_INET6_ 10

/* tcx return codes (linux/bpf.h names them TCX_*; spelled out for older
 * uapi headers). */
#define TCX_NEXT_ -1
#define TCX_DROP_ 2

/* Ethernet + IPv6 header: all decide() reads. */
#define HDR_COPY (14 + 40)

/* Rate limit, fixed at load time. emission_ns = 1e9 / rate: the spacing of
 * conforming packets; tolerance_ns = emission_ns * burst. 0 disables it. */
volatile const __u64 emission_ns = 0;
volatile const __u64 tolerance_ns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GUARD_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct guard_v4_key);
	__type(value, struct guard_block);
} guard_block_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GUARD_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct guard_v6_key);
	__type(value, struct guard_block);
} guard_block_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GUARD_MAX_RATE_SOURCES);
	__type(key, struct guard_src);
	__type(value, struct guard_rate);
} guard_rate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GUARD_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} guard_counters SEC(".maps");

/* Keeps enum guard_counter in the object's BTF so bpf2go emits it for Go
 * (-type guard_counter): the counter names have a single definition. */
const enum guard_counter guard_counter_btf_anchor __attribute__((unused)) = GUARD_CNT_MAX;

enum verdict { V_PASS = 0, V_DROP = 1 };

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&guard_counters, &idx);
	if (v)
		*v += 1;
}

/* blocked reports whether an entry matches and is still live. */
static __always_inline int blocked(struct guard_block *b, __u64 now)
{
	if (!b)
		return 0;
	if (b->expires_ns && b->expires_ns <= now) {
		count(GUARD_CNT_EXPIRED_MATCH);
		return 0;
	}
	return 1;
}

/* over_rate applies GCRA: conforming packets advance the theoretical arrival
 * time by emission_ns; a packet arriving more than tolerance_ns before it is
 * over the rate. Races between CPUs can let a few extra packets through, which
 * is the safe direction. */
static __always_inline int over_rate(struct guard_src *src, __u64 now)
{
	if (!emission_ns)
		return 0;
	struct guard_rate *r = bpf_map_lookup_elem(&guard_rate, src);
	if (!r) {
		struct guard_rate init = { .tat_ns = now + emission_ns };
		bpf_map_update_elem(&guard_rate, src, &init, BPF_ANY);
		return 0;
	}
	__u64 tat = r->tat_ns > now ? r->tat_ns : now;
	if (tat - now > tolerance_ns)
		return 1;
	r->tat_ns = tat + emission_ns;
	return 0;
}

/* decide parses Ethernet + IP between data and data_end and returns the
 * verdict for the packet's source. Shared by the XDP and tcx entry points. */
static __always_inline enum verdict decide(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end) {
		count(GUARD_CNT_MALFORMED);
		return V_PASS;
	}
	__u64 now = bpf_ktime_get_ns();
	struct guard_src src = {};

	if (eth->h_proto == bpf_htons(ETH_P_IP_)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end) {
			count(GUARD_CNT_MALFORMED);
			return V_PASS;
		}
		struct guard_v4_key k = { .prefixlen = 32 };
		__builtin_memcpy(k.addr, &ip->saddr, 4);
		if (blocked(bpf_map_lookup_elem(&guard_block_v4, &k), now)) {
			count(GUARD_CNT_DROP_BLOCKLIST);
			return V_DROP;
		}
		__builtin_memcpy(src.addr, &ip->saddr, 4);
		src.family = AF_INET_;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6_)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end) {
			count(GUARD_CNT_MALFORMED);
			return V_PASS;
		}
		struct guard_v6_key k = { .prefixlen = 128 };
		__builtin_memcpy(k.addr, &ip6->saddr, 16);
		if (blocked(bpf_map_lookup_elem(&guard_block_v6, &k), now)) {
			count(GUARD_CNT_DROP_BLOCKLIST);
			return V_DROP;
		}
		__builtin_memcpy(src.addr, &ip6->saddr, 16);
		src.family = AF_INET6_;
	} else {
		count(GUARD_CNT_NOT_IP);
		return V_PASS;
	}

	if (over_rate(&src, now)) {
		count(GUARD_CNT_DROP_RATELIMIT);
		return V_DROP;
	}
	count(GUARD_CNT_PASSED);
	return V_PASS;
}

SEC("xdp")
int guard_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	return decide(data, data_end) == V_DROP ? XDP_DROP : XDP_PASS;
}

SEC("tcx/ingress")
int guard_tc(struct __sk_buff *skb)
{
	/* Only the headers are needed. They are usually in the linear part,
	 * but not always: frames sent through an AF_PACKET TX ring (what any
	 * container with CAP_NET_RAW can do) carry only the Ethernet header
	 * there, and a guard that passed what it cannot parse would let a
	 * blocked source flood straight through. */
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 linear = data_end - data;
	/* AF_PACKET TX-ring frames carry only the Ethernet header in the
	 * linear part: copy the headers decide() reads to the stack instead
	 * of pulling (which may reallocate the skb). */
	if (linear < HDR_COPY && skb->len > linear) {
		if (skb->len >= HDR_COPY) {
			/* 2 bytes in, so the IP header after the 14-byte
			 * Ethernet header is aligned: the verifier rejects
			 * misaligned stack reads. */
			__u8 raw[HDR_COPY + 2] __attribute__((aligned(8)));
			__u8 *buf = raw + 2;
			if (bpf_skb_load_bytes(skb, 0, buf, HDR_COPY) < 0) {
				count(GUARD_CNT_MALFORMED);
				return TCX_NEXT_;
			}
			return decide(buf, buf + HDR_COPY) == V_DROP ? TCX_DROP_ : TCX_NEXT_;
		}
		/* Shorter than the copy: rare, pull it all. */
		bpf_skb_pull_data(skb, skb->len);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	return decide(data, data_end) == V_DROP ? TCX_DROP_ : TCX_NEXT_;
}
