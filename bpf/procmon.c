// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * procmon.c - binds TCP sockets to processes. Classic tracepoints only
 * (kprobes/fentry are unavailable on our kernels):
 *   sched_process_exec / sched_process_exit -> aw_proc_event
 *   inet_sock_set_state                     -> LISTEN, CONNECT, CLOSE
 *   sock_recv_length (first receive on a TCP socket this host did not
 *   connect())                              -> ACCEPT (the serving process)
 *   sys_exit_accept{,4}: the same on kernels without sock_recv_length
 * All records go to one ring buffer, each prefixed by a procmon_hdr.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "procmon_types.h"
#include "sock_length_tp.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Anchors so the record types land in BTF for bpf2go's -type. */
const struct aw_proc_event *unused_proc_event __attribute__((unused));
const struct sock_event *unused_sock_event __attribute__((unused));
const struct procmon_hdr *unused_procmon_hdr __attribute__((unused));
const enum procmon_counter *unused_procmon_counter __attribute__((unused));
const enum procmon_record_type *unused_procmon_record_type __attribute__((unused));

/* Ring buffer size: ~3000 proc records or ~9000 sock records. Process and
 * socket rates are far below packet rates, so this absorbs bursts such as a
 * build spawning thousands of compilers. */
#define PROC_EVENTS_RINGBUF_BYTES (1 << 20)
/* connect() calls between SYN_SENT and ESTABLISHED (or failure). LRU, so a
 * flood of never-answered SYNs evicts old entries instead of failing. */
#define MAX_PENDING_CONNECTS 16384
#define MAX_SEEN_SOCKS 65536

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PROC_EVENTS_RINGBUF_BYTES);
} proc_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PM_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} procmon_counters SEC(".maps");

/* Who called connect(): at SYN_SENT the source port is not chosen yet
 * (inet_hash_connect runs after the state change), and ESTABLISHED happens
 * in softirq context where the current task is unrelated. So we remember
 * the caller per socket and emit CONNECT once the tuple is complete. */
struct pending_connect {
	__u64 cgroup_id;
	__u32 tgid;
	__u32 pid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_PENDING_CONNECTS);
	__type(key, __u64); /* struct sock * */
	__type(value, struct pending_connect);
} pending_connects SEC(".maps");

/* Why the serving process is named at its first receive and not at
 * accept(): a syscall tracepoint, attached at all, sends every syscall of
 * every task on the host through the slow syscall-trace path (+14 ns each
 * here), while sock_recv_length runs on socket receives only. An HTTP
 * server reads a connection before it answers, and the table falls back
 * to the listener's process until then. */

/* Sockets already reported, and sockets this host connect()ed (marked at
 * SYN_SENT, in the caller's context): a receive on any other TCP socket
 * is the first on an accepted one. A receive costs one lookup; TCP_CLOSE
 * removes a socket (its address is reused). A client socket connected
 * before the agent started is reported as accepted too; the table keeps
 * what its scan of /proc found for it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_SEEN_SOCKS);
	__type(key, __u64); /* struct sock * */
	__type(value, __u8);
} seen_socks SEC(".maps");

/* Tracepoint contexts, as in /sys/kernel/tracing/events/<x>/format. Declared
 * here (after vmlinux.h pops preserve_access_index) because a classic
 * tracepoint's record layout is a stable ABI, not a kernel struct to
 * relocate. */
struct tp_sched_process_exec {
	__u64 common;
	__u32 filename_loc; /* __data_loc: offset in low 16 bits, len in high */
	__s32 pid;
	__s32 old_pid;
};

struct tp_sched_process_exit {
	__u64 common;
	char comm[16];
	__s32 pid;
	__s32 prio;
};

struct tp_inet_sock_set_state {
	__u64 common;
	const void *skaddr;
	__s32 oldstate;
	__s32 newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

struct tp_sys_exit {
	__u64 common;
	__s64 syscall_nr;
	__s64 ret;
};

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&procmon_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline __u32 netns_of(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* ---- processes ---------------------------------------------------------- */

SEC("tracepoint/sched/sched_process_exec")
int procmon_exec(struct tp_sched_process_exec *ctx)
{
	struct procmon_proc_record *r;
	struct task_struct *task;
	__u32 off;

	r = bpf_ringbuf_reserve(&proc_events, sizeof(*r), 0);
	if (!r) {
		count(PM_CNT_LOST);
		return 0;
	}
	task = (struct task_struct *)bpf_get_current_task();
	r->hdr.type = PROCMON_REC_PROC;
	r->hdr._pad = 0;
	__builtin_memset(&r->ev, 0, sizeof(r->ev));
	r->ev.ts_ns = bpf_ktime_get_ns();
	r->ev.cgroup_id = bpf_get_current_cgroup_id();
	r->ev.tgid = bpf_get_current_pid_tgid() >> 32;
	r->ev.ppid = BPF_CORE_READ(task, real_parent, tgid);
	r->ev.kind = PROC_EXEC;
	bpf_get_current_comm(r->ev.comm, sizeof(r->ev.comm));
	off = ctx->filename_loc & 0xFFFF;
	bpf_probe_read_kernel_str(r->ev.filename, sizeof(r->ev.filename), (void *)ctx + off);
	bpf_ringbuf_submit(r, 0);
	count(PM_CNT_PROC_EVENTS);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int procmon_exit(struct tp_sched_process_exit *ctx)
{
	struct procmon_proc_record *r;
	struct task_struct *task;
	__u64 id = bpf_get_current_pid_tgid();

	/* Only the thread-group leader: other threads exiting do not end the
	 * process, and one record per process keeps the buffer small. */
	if ((__u32)id != (__u32)(id >> 32))
		return 0;
	r = bpf_ringbuf_reserve(&proc_events, sizeof(*r), 0);
	if (!r) {
		count(PM_CNT_LOST);
		return 0;
	}
	task = (struct task_struct *)bpf_get_current_task();
	r->hdr.type = PROCMON_REC_PROC;
	r->hdr._pad = 0;
	__builtin_memset(&r->ev, 0, sizeof(r->ev));
	r->ev.ts_ns = bpf_ktime_get_ns();
	r->ev.cgroup_id = bpf_get_current_cgroup_id();
	r->ev.tgid = id >> 32;
	r->ev.ppid = BPF_CORE_READ(task, real_parent, tgid);
	r->ev.kind = PROC_EXIT;
	bpf_get_current_comm(r->ev.comm, sizeof(r->ev.comm));
	bpf_ringbuf_submit(r, 0);
	count(PM_CNT_PROC_EVENTS);
	return 0;
}

/* ---- sockets ------------------------------------------------------------ */

static __always_inline struct procmon_sock_record *reserve_sock(__u8 kind)
{
	struct procmon_sock_record *r;

	r = bpf_ringbuf_reserve(&proc_events, sizeof(*r), 0);
	if (!r) {
		count(PM_CNT_LOST);
		return 0;
	}
	r->hdr.type = PROCMON_REC_SOCK;
	r->hdr._pad = 0;
	__builtin_memset(&r->ev, 0, sizeof(r->ev));
	r->ev.ts_ns = bpf_ktime_get_ns();
	r->ev.kind = kind;
	return r;
}

static __always_inline void fill_current(struct sock_event *ev)
{
	__u64 id = bpf_get_current_pid_tgid();

	ev->tgid = id >> 32;
	ev->pid = (__u32)id;
	ev->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
}

/* Copies the tracepoint's tuple; it is already local -> remote. */
static __always_inline void key_from_tp(struct flow_key *k, const struct tp_inet_sock_set_state *ctx)
{
	k->sport = ctx->sport;
	k->dport = ctx->dport;
	k->family = ctx->family;
	if (ctx->family == AW_AF_INET) {
		__builtin_memcpy(k->saddr, ctx->saddr, 4);
		__builtin_memcpy(k->daddr, ctx->daddr, 4);
	} else {
		__builtin_memcpy(k->saddr, ctx->saddr_v6, 16);
		__builtin_memcpy(k->daddr, ctx->daddr_v6, 16);
	}
}

static __always_inline void emit_state(const struct tp_inet_sock_set_state *ctx, __u8 kind,
				       const struct pending_connect *pc)
{
	struct procmon_sock_record *r = reserve_sock(kind);

	if (!r)
		return;
	if (pc) {
		r->ev.tgid = pc->tgid;
		r->ev.pid = pc->pid;
		r->ev.cgroup_id = pc->cgroup_id;
		__builtin_memcpy(r->ev.comm, pc->comm, sizeof(r->ev.comm));
	} else if (kind == SOCK_LISTEN) {
		fill_current(&r->ev);
	}
	key_from_tp(&r->ev.key, ctx);
	r->ev.netns = netns_of((const struct sock *)ctx->skaddr);
	bpf_ringbuf_submit(r, 0);
	count(PM_CNT_SOCK_EVENTS);
}

SEC("tracepoint/sock/inet_sock_set_state")
int procmon_sock_state(struct tp_inet_sock_set_state *ctx)
{
	__u64 sk = (__u64)ctx->skaddr;
	struct pending_connect *pc;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (ctx->family != AW_AF_INET && ctx->family != AW_AF_INET6)
		return 0;

	switch (ctx->newstate) {
	case TCP_LISTEN:
		/* listen() runs in the caller's context: current is the service. */
		emit_state(ctx, SOCK_LISTEN, 0);
		return 0;
	case TCP_SYN_SENT: {
		struct pending_connect v = {};
		__u64 id = bpf_get_current_pid_tgid();

		v.tgid = id >> 32;
		v.pid = (__u32)id;
		v.cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(v.comm, sizeof(v.comm));
		bpf_map_update_elem(&pending_connects, &sk, &v, BPF_ANY);
		__u8 one = 1;
		bpf_map_update_elem(&seen_socks, &sk, &one, BPF_ANY);
		return 0;
	}
	case TCP_ESTABLISHED:
		if (ctx->oldstate != TCP_SYN_SENT)
			return 0; /* server side: accept() reports it with the right process */
		pc = bpf_map_lookup_elem(&pending_connects, &sk);
		if (!pc) {
			count(PM_CNT_CONNECT_UNMATCHED);
			return 0;
		}
		emit_state(ctx, SOCK_CONNECT, pc);
		bpf_map_delete_elem(&pending_connects, &sk);
		return 0;
	case TCP_CLOSE:
		bpf_map_delete_elem(&pending_connects, &sk);
		bpf_map_delete_elem(&seen_socks, &sk);
		/* CLOSE -> CLOSE: a socket that never connected; nothing to unbind. */
		if (ctx->oldstate == TCP_CLOSE)
			return 0;
		emit_state(ctx, SOCK_CLOSE, 0);
		return 0;
	}
	return 0;
}

/* Reads sk's tuple into ev: 0, or 1 for a socket that is not TCP over IP. */
static __always_inline int sock_tuple(struct sock *sk, struct sock_event *ev)
{
	__u16 family;

	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	/* Unix and other sockets are accepted too; they are not ours. */
	if (family != AW_AF_INET && family != AW_AF_INET6)
		return 1;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 1;

	ev->key.family = family;
	ev->key.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->key.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AW_AF_INET) {
		__be32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(ev->key.saddr, &s, 4);
		__builtin_memcpy(ev->key.daddr, &d, 4);
	} else {
		BPF_CORE_READ_INTO(&ev->key.saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&ev->key.daddr, sk, __sk_common.skc_v6_daddr);
	}
	ev->netns = netns_of(sk);
	return 0;
}

/* Reads the tuple of the socket behind fd in the current task. Returns 0 on
 * success, 1 for a socket that is not TCP over IP, -1 when unreadable. The
 * accept() that just returned fd made it a TCP/INET socket, but
 * a racing close()/dup2() from another thread may have replaced it, so
 * family and protocol are checked again. */
static __always_inline int sock_of_fd(long fd, struct sock_event *ev)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = 0;
	struct socket *sock;
	struct sock *sk;
	__u32 max_fds;

	if (!fdt)
		return -1;
	max_fds = BPF_CORE_READ(fdt, max_fds);
	if (fd < 0 || fd >= max_fds)
		return -1;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return -1;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return -1;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return -1;
	return sock_tuple(sk, ev);
}

static __always_inline int on_accept_exit(struct tp_sys_exit *ctx)
{
	struct procmon_sock_record *r;
	int err;

	if (ctx->ret < 0)
		return 0;
	r = reserve_sock(SOCK_ACCEPT);
	if (!r)
		return 0;
	err = sock_of_fd(ctx->ret, &r->ev);
	if (err) {
		bpf_ringbuf_discard(r, 0);
		if (err < 0)
			count(PM_CNT_ACCEPT_UNREADABLE);
		return 0;
	}
	fill_current(&r->ev);
	bpf_ringbuf_submit(r, 0);
	count(PM_CNT_SOCK_EVENTS);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int procmon_accept4(struct tp_sys_exit *ctx)
{
	return on_accept_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int procmon_accept(struct tp_sys_exit *ctx)
{
	return on_accept_exit(ctx);
}

SEC("tracepoint/sock/sock_recv_length")
int procmon_sock_recv(struct sock_length_args *ctx)
{
	struct procmon_sock_record *r;
	struct sock *sk = (struct sock *)ctx->sk;
	__u64 key = ctx->sk;
	__u8 one = 1;

	if (ctx->protocol != IPPROTO_TCP || (ctx->family != AW_AF_INET && ctx->family != AW_AF_INET6))
		return 0;
	if (bpf_map_lookup_elem(&seen_socks, &key))
		return 0;
	bpf_map_update_elem(&seen_socks, &key, &one, BPF_ANY);
	r = reserve_sock(SOCK_ACCEPT);
	if (!r)
		return 0;
	if (sock_tuple(sk, &r->ev)) {
		bpf_ringbuf_discard(r, 0);
		return 0;
	}
	fill_current(&r->ev);
	bpf_ringbuf_submit(r, 0);
	count(PM_CNT_SOCK_EVENTS);
	return 0;
}
