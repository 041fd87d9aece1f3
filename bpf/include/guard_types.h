/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * guard_types.h - records shared by the guard programs (XDP and tcx) and the
 * agent: blocklist keys and values, rate-limit state and counters.
 */
#ifndef APIWARDEN_GUARD_TYPES_H
#define APIWARDEN_GUARD_TYPES_H

/* Blocklist capacity per family; the agent refuses entries beyond it. */
#define GUARD_MAX_PREFIXES 65536
/* Sources tracked by the rate limiter; LRU beyond. */
#define GUARD_MAX_RATE_SOURCES 65536

/* LPM trie keys: prefixlen first, as the kernel requires. */
struct guard_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct guard_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* A blocklist entry. expires_ns is CLOCK_MONOTONIC (bpf_ktime_get_ns);
 * 0 means until removed. An expired entry no longer matches even before the
 * agent collects it, so a dead agent cannot keep a TTL block alive. */
struct guard_block {
	__u64 expires_ns;
	__u32 reason; /* enum guard_reason */
	__u32 _pad;
};

enum guard_reason {
	GUARD_REASON_MANUAL = 1,
	GUARD_REASON_DETECTION = 2,
};

/* Rate limiter key: one source address. */
struct guard_src {
	__u8 addr[16];
	__u8 family;
	__u8 _pad[7];
};

/* GCRA state: the theoretical arrival time of the next conforming packet. */
struct guard_rate {
	__u64 tat_ns;
};

enum guard_counter {
	GUARD_CNT_PASSED = 0,        /* packets passed */
	GUARD_CNT_DROP_BLOCKLIST,    /* dropped: source in the blocklist */
	GUARD_CNT_DROP_RATELIMIT,    /* dropped: source over its rate */
	GUARD_CNT_EXPIRED_MATCH,     /* matched an expired entry: passed */
	GUARD_CNT_NOT_IP,            /* not IPv4/IPv6: passed */
	GUARD_CNT_MALFORMED,         /* too short to parse: passed */
	GUARD_CNT_MAX,
};

#endif
