/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * apiwarden_events.h - the one definition of every record that crosses the
 * kernel/userspace boundary. Go sees these through bpf2go-generated types
 * (-type flags), never through hand-copied structs. Every struct is
 * explicitly padded to a multiple of 8 bytes so C and Go agree on layout
 * without __attribute__((packed)).
 */
#ifndef APIWARDEN_EVENTS_H
#define APIWARDEN_EVENTS_H

/* Largest payload one chunk event carries. Larger segments (GSO/GRO
 * super-packets reach 64 KiB on veth, more on loopback where tot_len is 0)
 * are split into several chunk events, up to MAX_CHUNKS_PER_SKB (8 x 16 KiB
 * = 128 KiB); whatever is left is counted as truncated. The runtime
 * limit (volatile const chunk_max) may lower this, never raise it. */
#define MAX_CHUNK_DATA 16384
#define MAX_CHUNKS_PER_SKB 8

/* BPF_RINGBUF_HDR_SZ: the kernel's per-record header (wakeup arithmetic). */
#define RINGBUF_HDR_SZ 8

/* Address family, as in AF_INET / AF_INET6. */
#define AW_AF_INET 2
#define AW_AF_INET6 10

/* flow_key: one direction of one TCP connection, as the packet carries it.
 * IPv4 addresses use the first 4 bytes of saddr/daddr, the rest is zero.
 * Ports are in host byte order. */
struct flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 _pad[3];
};

/* Where a chunk was seen. */
enum chunk_source {
	CHUNK_SRC_TC_INGRESS = 1,
	CHUNK_SRC_TC_EGRESS = 2,
	CHUNK_SRC_TLS_READ = 3,  /* decrypted bytes returned by a TLS read */
	CHUNK_SRC_TLS_WRITE = 4, /* plaintext handed to a TLS write */
};

/* TCP flags as carried in chunk_event.tcp_flags. */
#define AW_TCP_FIN 0x01
#define AW_TCP_SYN 0x02
#define AW_TCP_RST 0x04
#define AW_TCP_PSH 0x08
#define AW_TCP_ACK 0x10
/* Not a TCP flag: the chunk's missing tail (payload_len - len) is past the
 * flow's copy budget (capture.c) and was counted, not copied. Userspace
 * skips it as intended, not as a loss. */
#define AW_CHUNK_SKIPPED 0x80

/* chunk_event: a bounded copy of payload bytes of one segment (TC) or one
 * TLS read/write. Emitted also for payload-less SYN/FIN/RST segments so
 * userspace can open and close flows. data[] is followed by `len` bytes
 * only: the ring buffer record is sizeof(header) + len. */
struct chunk_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns() */
	struct flow_key key;
	__u32 seq;          /* TCP seq of data[0]; TLS: stream offset (mod 2^32) */
	__u32 len;          /* bytes in data[] */
	__u32 payload_len;  /* bytes of payload the segment/TLS call had */
	__u32 ifindex;      /* TC: interface; TLS: 0 */
	__u32 pid;          /* TLS: tgid of the process; TC: 0 */
	__u32 conn_id;      /* TLS: per-process connection id (fd); TC: 0 */
	__u8 tcp_flags;     /* AW_TCP_* */
	__u8 source;        /* enum chunk_source */
	__u8 _pad[6];
	__u8 data[MAX_CHUNK_DATA];
};

/* Per-CPU counters of the capture programs, index into an array map. */
enum capture_counter {
	CNT_SEGMENTS_SEEN = 0,  /* TCP segments inspected */
	CNT_CHUNKS_CAPTURED,    /* chunk events written */
	CNT_BYTES_CAPTURED,     /* payload bytes copied */
	CNT_CHUNKS_TRUNCATED,   /* segments whose payload did not fit */
	CNT_BYTES_TRUNCATED,    /* payload bytes not copied */
	CNT_CHUNKS_LOST,        /* ring buffer full: event dropped */
	CNT_NON_TCP,            /* packets passed untouched (not TCP) */
	CNT_PORT_FILTERED,      /* TCP segments skipped by the port filter */
	CNT_MALFORMED,          /* IP/TCP headers too short or inconsistent */
	CNT_NOT_PARSED,         /* later fragments, IPv6 extension chains too long */
	CNT_SEEN_ELSEWHERE,     /* skipped: captured at another watched hook */
	CNT_SEGMENTS_SKIPPED,   /* segments cut short by their message's copy budget */
	CNT_BYTES_SKIPPED,      /* payload bytes past a copy budget: counted, not copied */
	CNT_BUDGET_FLOWS_LOST,  /* copy budget state not stored (map update failed) */
	CNT_CIPHERTEXT_SKIPPED, /* TLS record segments not captured (the probes see them) */
	CNT_MAX,
};

/* sock_event: socket life-cycle seen from tracepoints, used to bind flows to
 * processes. key is oriented local -> remote (saddr = this host's side). */
enum sock_event_kind {
	SOCK_LISTEN = 1,  /* listen(): the service's process and port */
	SOCK_CONNECT = 2, /* connect(): client process of an outgoing flow */
	SOCK_ACCEPT = 3,  /* accept() returned: process that serves the flow */
	SOCK_CLOSE = 4,   /* socket reached TCP_CLOSE */
};

struct sock_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	struct flow_key key;
	__u32 tgid;
	__u32 pid;
	__u32 netns;        /* network namespace inode */
	__u8 kind;          /* enum sock_event_kind */
	__u8 _pad[3];
	char comm[16];
};

/* aw_proc_event (named apart from the kernel's own struct proc_event in
 * vmlinux.h): process start/end, to keep the process table current and to
 * attach TLS probes to new processes before their first request. */
enum proc_event_kind {
	PROC_EXEC = 1,
	PROC_EXIT = 2,
};

#define MAX_FILENAME 256

struct aw_proc_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 tgid;
	__u32 ppid;
	__u8 kind;          /* enum proc_event_kind */
	__u8 _pad[7];
	char comm[16];
	char filename[MAX_FILENAME];
};

#endif /* APIWARDEN_EVENTS_H */
