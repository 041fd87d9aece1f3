/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * procmon_types.h - records and counters of bpf/procmon.c (process and
 * socket attribution). Both record kinds share one ring buffer, so every
 * record starts with a procmon_hdr naming its kind; the payload is the
 * shared struct from apiwarden_events.h, unchanged.
 */
#ifndef PROCMON_TYPES_H
#define PROCMON_TYPES_H

#include "apiwarden_events.h"

/* Ring buffer record kinds (procmon_hdr.type). */
enum procmon_record_type {
	PROCMON_REC_PROC = 1, /* followed by struct aw_proc_event */
	PROCMON_REC_SOCK = 2, /* followed by struct sock_event */
};

/* 8 bytes so the payload after it stays 8-byte aligned. */
struct procmon_hdr {
	__u32 type;
	__u32 _pad;
};

struct procmon_proc_record {
	struct procmon_hdr hdr;
	struct aw_proc_event ev;
};

struct procmon_sock_record {
	struct procmon_hdr hdr;
	struct sock_event ev;
};

/* Per-CPU counters, index into the procmon_counters array map. */
enum procmon_counter {
	PM_CNT_PROC_EVENTS = 0,   /* proc records written */
	PM_CNT_SOCK_EVENTS,       /* sock records written */
	PM_CNT_LOST,              /* ring buffer full: record dropped */
	PM_CNT_CONNECT_UNMATCHED, /* ESTABLISHED from SYN_SENT without a stashed connect() */
	PM_CNT_ACCEPT_UNREADABLE, /* accept() returned an fd we could not read */
	PM_CNT_MAX,
};

#endif /* PROCMON_TYPES_H */
