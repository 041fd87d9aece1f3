// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/*
 * reset.c - abort TCP connections that the agent decided to cut. An iter/tcp
 * program walks the TCP sockets of one network namespace and calls the
 * bpf_sock_destroy kfunc on each socket whose 4-tuple userspace put into
 * reset_targets: the kernel sends a RST to the peer and fails the local
 * socket with ECONNABORTED, so neither side keeps talking. This is the only
 * way to kill a socket without kprobes or signals, and it never touches a
 * socket that no target names.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "apiwarden_events.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Connections waiting to be cut in one pass; the agent sizes batches by it. */
#define MAX_RESET_TARGETS 4096

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/* Keys are oriented local -> remote as the socket sees them: saddr is this
 * host's address, sport the local port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_RESET_TARGETS);
	__type(key, struct flow_key);
	__type(value, __u32); /* sockets destroyed for this key */
} reset_targets SEC(".maps");

enum reset_counter {
	RESET_CNT_SOCKETS_SEEN = 0,
	RESET_CNT_DESTROYED,
	RESET_CNT_DESTROY_FAILED,
	RESET_CNT_MAX,
};

/* Keeps enum reset_counter in BTF so Go gets the names from bpf2go. */
const enum reset_counter reset_counter_btf_anchor __attribute__((unused)) = RESET_CNT_MAX;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RESET_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} reset_counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&reset_counters, &idx);
	if (v)
		*v += 1;
}

/* v4mapped reports whether an IPv6 address is ::ffff:a.b.c.d, which is how a
 * dual-stack listener (Go's default) holds IPv4 connections. */
static __always_inline int v4mapped(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == 0 && a->in6_u.u6_addr32[1] == 0 &&
	       a->in6_u.u6_addr32[2] == bpf_htonl(0x0000ffff);
}

SEC("iter/tcp")
int reset_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;
	if (!sk)
		return 0;
	count(RESET_CNT_SOCKETS_SEEN);

	struct flow_key key = {};
	key.sport = sk->skc_num;
	key.dport = bpf_ntohs(sk->skc_dport);
	if (sk->skc_family == AW_AF_INET ||
	    (sk->skc_family == AW_AF_INET6 && v4mapped(&sk->skc_v6_daddr))) {
		key.family = AW_AF_INET;
		__builtin_memcpy(key.saddr, &sk->skc_rcv_saddr, 4);
		__builtin_memcpy(key.daddr, &sk->skc_daddr, 4);
	} else if (sk->skc_family == AW_AF_INET6) {
		key.family = AW_AF_INET6;
		__builtin_memcpy(key.saddr, &sk->skc_v6_rcv_saddr, 16);
		__builtin_memcpy(key.daddr, &sk->skc_v6_daddr, 16);
	} else {
		return 0;
	}

	__u32 *hits = bpf_map_lookup_elem(&reset_targets, &key);
	if (!hits)
		return 0;
	if (bpf_sock_destroy(sk) == 0) {
		__sync_fetch_and_add(hits, 1);
		count(RESET_CNT_DESTROYED);
	} else {
		count(RESET_CNT_DESTROY_FAILED);
	}
	return 0;
}
