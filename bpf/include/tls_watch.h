/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* tls_watch: which tgids the TLS sensor's syscall tracepoints work for.
 *
 * The tracepoints on read/write/send/recv run for every syscall of every
 * process on the host; only threads inside a probed TLS call (or processes
 * whose TLS library reads through a memory BIO) need them. A bit per tgid,
 * set by the entry probe on a process's first TLS call (so the first
 * request of a new process is joined to its socket as before) and by
 * userspace for memory-BIO processes, lets every other syscall return
 * after one inlined array lookup instead of a hash lookup.
 *
 * Userspace clears a bit when its process exits with a read-modify-write of
 * the word; a kernel set racing with it on a neighbouring tgid can be lost,
 * and is set again at that process's next TLS call (the fd of a connection
 * is remembered per SSL* after the first call, so at most one call of a
 * new connection goes without its fd: counted as no_fd). */
#ifndef APIWARDEN_TLS_WATCH_H
#define APIWARDEN_TLS_WATCH_H

/* pid_max is at most 2^22 (PID_MAX_LIMIT on 64-bit). */
#define TLS_WATCH_WORDS ((1 << 22) / 64)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TLS_WATCH_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} tls_watch SEC(".maps");

static __always_inline bool tls_watched(__u32 tgid)
{
	__u32 w = tgid >> 6;
	__u64 *v = bpf_map_lookup_elem(&tls_watch, &w);

	return v && (*v & (1ULL << (tgid & 63)));
}

static __always_inline void tls_watch_mark(__u32 tgid)
{
	__u32 w = tgid >> 6;
	__u64 bit = 1ULL << (tgid & 63);
	__u64 *v = bpf_map_lookup_elem(&tls_watch, &w);

	if (v && !(*v & bit))
		__sync_fetch_and_or(v, bit);
}

#endif
