/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * enforce_types.h - records shared by the enforcement programs (tcx ingress
 * and egress) and the agent: compiled request rules, flagged flows and the
 * events that report a kernel verdict.
 */
#ifndef APIWARDEN_ENFORCE_TYPES_H
#define APIWARDEN_ENFORCE_TYPES_H

#include "apiwarden_events.h"

/* Rules the kernel matches on the first segment of each plaintext request. */
#define ENFORCE_MAX_RULES 32
/* Longest pattern (method+path prefix or literal signature). */
#define ENFORCE_MAX_PATTERN 32
/* Bytes of a request's first segment that are scanned (request line and the
 * first headers). Power of two: indexes are masked with it. */
#define ENFORCE_MAX_SCAN 512
/* Flows flagged at once (LRU beyond: the oldest verdict is forgotten, which
 * fails open). */
#define ENFORCE_MAX_FLAGGED 65536
/* A SYN (no ACK) on a flagged 4-tuple older than this starts a new
 * connection that reuses a cut one's client port (the cut socket is
 * destroyed by then): it clears the flag and passes. Younger flags keep
 * dropping it, so a spoofed SYN cannot reopen a flow the agent is still
 * tearing down; the client's SYN retransmit (1 s) gets through. */
#define ENFORCE_FLAG_SYN_GRACE_NS (100ULL * 1000 * 1000)
/* Server ports whose service overrides the global mode (port -> action). */
#define ENFORCE_MAX_PORT_MODES 256
/* Request bytes an enforcement event carries as evidence. */
#define ENFORCE_EVIDENCE 256

enum enforce_kind {
	ENFORCE_KIND_PREFIX = 1,  /* method (optional) + path prefix */
	ENFORCE_KIND_LITERAL = 2, /* case-insensitive literal anywhere in scan */
};

enum enforce_action {
	ENFORCE_ACT_COUNT = 1, /* monitor: report, pass */
	ENFORCE_ACT_DROP = 2,  /* protect: drop, flag the flow, report */
};

struct enforce_rule {
	__u32 id;
	__u16 port;        /* server port the rule applies to; 0 = any */
	__u8 kind;         /* enum enforce_kind */
	__u8 action;       /* enum enforce_action */
	__u8 method_len;   /* 0 = any method (prefix rules) */
	__u8 pattern_len;  /* 1..ENFORCE_MAX_PATTERN */
	__u8 _pad[6];
	char method[8];
	char pattern[ENFORCE_MAX_PATTERN]; /* literals are lower case */
};

/* Global rule-set state, one entry: the number of rules in use and a bitmap
 * of the first two (lower-cased) bytes of literal patterns, indexed by
 * b0 << 8 | b1, so the scan looks closer only at positions that can start a
 * match: most request bytes cost one bit test. Literals are >= 2 bytes. */
#define ENFORCE_PAIR_BITMAP_BYTES 8192
struct enforce_config {
	__u32 rule_count;
	__u32 _pad;
	__u8 first_pairs[ENFORCE_PAIR_BITMAP_BYTES];
};

/* Why a flow is flagged. */
enum enforce_reason {
	ENFORCE_REASON_KERNEL_RULE = 1, /* matched here, in TC */
	ENFORCE_REASON_USERSPACE = 2,   /* the agent's detector decided */
	ENFORCE_REASON_TLS_RULE = 3,    /* matched on decrypted TLS bytes */
};

struct enforce_flag {
	__u64 ts_ns;
	__u32 rule_id;
	__u32 reason; /* enum enforce_reason */
};

/* enforce_event reports a kernel rule match (dropped or counted). */
struct enforce_event {
	__u64 ts_ns;
	struct flow_key key; /* client -> server */
	__u32 rule_id;
	__u32 ifindex;
	__u32 len;           /* bytes in data */
	__u8 action;         /* enum enforce_action */
	__u8 _pad[3];
	__u8 data[ENFORCE_EVIDENCE];
};

enum enforce_counter {
	ENF_CNT_REQUESTS_INSPECTED = 0, /* first segments of requests scanned */
	ENF_CNT_MATCH_DROPPED,          /* requests dropped by a rule */
	ENF_CNT_MATCH_COUNTED,          /* requests matched in monitor mode */
	ENF_CNT_FLAGGED_DROP_INGRESS,   /* packets of flagged flows dropped */
	ENF_CNT_FLAGGED_DROP_EGRESS,
	ENF_CNT_EVENTS_LOST,            /* ring buffer full */
	ENF_CNT_HOLD_MARKED,            /* segments marked for the verdict queue */
	ENF_CNT_HOLD_TLS_MARKED,        /* TLS response segments marked (hold.h) */
	ENF_CNT_FLAG_CLEARED_SYN,       /* flags cleared by a new connection's SYN */
	ENF_CNT_MAX,
};

#endif
