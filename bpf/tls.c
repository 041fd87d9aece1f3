// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tls.c - TLS plaintext sensor. Uprobes on TLS libraries (OpenSSL, GnuTLS,
 * Go crypto/tls) copy the decrypted bytes of each read and the plaintext of
 * each write into struct chunk_event records, with the tgid, the socket fd
 * and the connection's real TCP 4-tuple, so userspace can reassemble the
 * stream per (pid, fd, direction) and merge it with the flow seen on TC.
 *
 * C-library TLS: an entry probe saves the call's arguments per thread, the
 * return probe emits the bytes. The socket is learnt from the socket I/O
 * the library does inside the call (tracepoints sock_recv_length and
 * sock_send_length, which name the struct sock; remembered per SSL* for
 * reads served from the library's buffer without I/O). Those fire only on
 * socket I/O; syscall tracepoints (the fallback on kernels before 6.3)
 * put every syscall of every task on the host on the tracing slow path.
 * Go: an entry probe keyed by goroutine, and one probe on every RET of the
 * function (uretprobes corrupt Go's movable stacks); the fd is read from
 * tls.Conn -> net.Conn -> netFD -> poll.FD.Sysfd.
 *
 * Enforcement: a read that returns the start of a request (a server
 * reading its client) is matched against the kernel rule set of
 * enforce_match.h before the library call returns, so a drop rule flags
 * the flow before the application holds the decrypted bytes; TC egress
 * (enforce.c) then drops every further packet of the flow - no response
 * leaves - and the agent aborts the sockets on the event. The rule, flag
 * and event maps are the enforcer's (the loader shares them); without an
 * enforcer they stay empty and nothing is matched.
 */
//go:build ignore

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "apiwarden_events.h"
#include "tls_types.h"
#include "enforce_match.h"
#include "tls_watch.h"
#include "hold.h"
#include "sock_length_tp.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define S_IFMT_ 00170000
#define S_IFSOCK_ 0140000

/* Layout of Go's net.Conn -> *netFD -> poll.FD.Sysfd (Go >= 1.17; see
 * datapath/tls/gotls.go for where these come from). Userspace may override
 * them per loaded collection when DWARF says otherwise. */
volatile const __u64 go_iface_data_off = 8;
volatile const __u64 go_conn_fd_off = 0;
volatile const __u64 go_netfd_sysfd_off = 16;

/* Bytes copied per chunk (Config.ChunkMax); at most MAX_CHUNK_DATA. */
volatile const __u32 chunk_max = MAX_CHUNK_DATA;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} tls_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TLS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tls_counters SEC(".maps");

/* thread (pid_tgid) -> in-flight C-library TLS call */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLS_MAX_ACTIVE_CALLS);
	__type(key, __u64);
	__type(value, struct tls_call);
} tls_active SEC(".maps");

/* (tgid, goroutine) -> in-flight Go TLS call */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLS_MAX_ACTIVE_CALLS);
	__type(key, struct tls_go_key);
	__type(value, struct tls_call);
} tls_go_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLS_MAX_SSL_FDS);
	__type(key, struct tls_ssl_key);
	__type(value, __u64);
} tls_ssl_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLS_MAX_STREAMS);
	__type(key, struct tls_stream_key);
	__type(value, __u64);
} tls_offsets SEC(".maps");

/* Processes whose TLS library reads through a memory BIO (node): the
 * socket read happens before SSL_read, outside the call, so the last
 * socket each of their threads read from stands in. Filled by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TLS_MAX_TRACKED_PROCS);
	__type(key, __u32);
	__type(value, __u8);
} tls_track_tgid SEC(".maps");

/* thread -> struct sock * of its last socket read (tracked processes only) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLS_MAX_ACTIVE_CALLS);
	__type(key, __u64);
	__type(value, __u64);
} tls_last_rsk SEC(".maps");

/* (tgid, fd, READ) -> request start seen by short reads (enforcement). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLS_MAX_CARRIES);
	__type(key, struct tls_stream_key);
	__type(value, struct tls_carry);
} tls_req_carry SEC(".maps");

/* One chunk_event is too big for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct chunk_event);
} tls_scratch SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&tls_counters, &idx);
	if (v)
		*v += n;
}

/* fd_sock returns the struct sock behind fd in the current task, or NULL
 * when fd is not a socket. */
static __always_inline struct sock *fd_sock(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct files_struct *files = BPF_CORE_READ(task, files);
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	struct file **fdarr = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;

	if (fd < 0 || (unsigned int)fd >= max_fds)
		return NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fdarr[fd]) || !file)
		return NULL;
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT_) != S_IFSOCK_)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	return BPF_CORE_READ(sock, sk);
}

/* sock_key fills key with the 4-tuple of sk, oriented sender -> receiver
 * for dir. Returns 0 on success. */
static __always_inline int sock_key(struct sock *sk, __u8 dir, struct flow_key *key)
{
	if (!sk)
		return -1;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	__u8 laddr[16] = {}, raddr[16] = {};

	if (family == AW_AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)raddr, sk, __sk_common.skc_daddr);
	} else if (family == AW_AF_INET6) {
		BPF_CORE_READ_INTO(&laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&raddr, sk, __sk_common.skc_v6_daddr);
		/* A dual-stack socket holds IPv4 peers as ::ffff:a.b.c.d. On
		 * the wire (and so in TC's flow keys, and in flagged_flows) the
		 * connection is IPv4: key it as IPv4, or a verdict made here
		 * would never match its packets. */
		if (*(__u64 *)raddr == 0 && *(__u32 *)(raddr + 8) == bpf_htonl(0xffff)) {
			family = AW_AF_INET;
			__builtin_memmove(laddr, laddr + 12, 4);
			__builtin_memmove(raddr, raddr + 12, 4);
			__builtin_memset(laddr + 4, 0, 12);
			__builtin_memset(raddr + 4, 0, 12);
		}
	} else {
		return -1;
	}
	key->family = family;
	if (dir == TLS_DIR_WRITE) {
		__builtin_memcpy(key->saddr, laddr, 16);
		__builtin_memcpy(key->daddr, raddr, 16);
		key->sport = lport;
		key->dport = rport;
	} else {
		__builtin_memcpy(key->saddr, raddr, 16);
		__builtin_memcpy(key->daddr, laddr, 16);
		key->sport = rport;
		key->dport = lport;
	}
	return 0;
}

struct emit_ctx {
	struct flow_key key;
	__u64 buf;
	__u64 total;   /* bytes the call moved */
	__u64 done;    /* bytes already emitted */
	__u64 ts;
	__u32 seq;
	__u32 pid;
	__u32 fd;
	__u8 source;
	__u8 wake;     /* a held flow: wake the reader now */
};

/* emit_piece copies one MAX_CHUNK_DATA slice of the call into one event.
 * It is a bpf_loop callback so a 1 MiB write stays one verifier pass. */
static long emit_piece(__u32 i, void *data)
{
	struct emit_ctx *c = data;
	__u32 zero = 0;

	if (c->done >= c->total)
		return 1;
	struct chunk_event *ev = bpf_map_lookup_elem(&tls_scratch, &zero);
	if (!ev)
		return 1;
	__u64 left = c->total - c->done;
	__u64 piece = left;
	__u32 limit = chunk_max;
	if (limit == 0 || limit > MAX_CHUNK_DATA)
		limit = MAX_CHUNK_DATA;
	if (piece > limit)
		piece = limit;
	/* The last allowed piece carries the untransferred rest in payload_len,
	 * so userspace sees exactly where the gap is. */
	__u64 payload = piece;
	if (i == TLS_MAX_CHUNKS_PER_CALL - 1 && left > piece) {
		payload = left;
		count(TLS_CNT_CHUNKS_TRUNCATED, 1);
		count(TLS_CNT_BYTES_TRUNCATED, left - piece);
	}

	ev->ts_ns = c->ts;
	ev->key = c->key;
	ev->seq = c->seq + (__u32)c->done;
	ev->payload_len = (__u32)payload;
	ev->ifindex = 0;
	ev->pid = c->pid;
	ev->conn_id = c->fd;
	ev->tcp_flags = 0;
	ev->source = c->source;
	__builtin_memset(ev->_pad, 0, sizeof(ev->_pad));

	__u32 n = piece & (2 * MAX_CHUNK_DATA - 1);
	if (n > MAX_CHUNK_DATA)
		n = MAX_CHUNK_DATA;
	if (bpf_probe_read_user(ev->data, n, (void *)(c->buf + c->done))) {
		count(TLS_CNT_READ_FAILED, 1);
		n = 0;
	}
	ev->len = n;
	__u64 size = offsetof(struct chunk_event, data) + n;
	if (size > sizeof(*ev))
		return 1;
	/* Waking the reader per event costs a context switch per TLS call
	 * (~20 us measured); it polls instead, and is woken by the record
	 * that carries the waiting data across TLS_WAKEUP_BYTES - not by
	 * every record while the data stays above it: a forced wakeup is an
	 * irq_work, ~5 us of this probe in a VM, and with the reader behind
	 * (the agent sharing a CPU with the server, bench/http -pin) that was
	 * 18 us of BPF per HTTPS request - or by the last piece of a read
	 * whose response the hold point holds until the agent has judged it,
	 * unless the data waiting is past the mark already (its crossing woke
	 * the reader, which reads this record too). */
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 avail = bpf_ringbuf_query(&tls_events, BPF_RB_AVAIL_DATA);
	__u64 rec = (size + RINGBUF_HDR_SZ + 7) & ~7ULL;
	if (avail < TLS_WAKEUP_BYTES &&
	    (avail + rec >= TLS_WAKEUP_BYTES || (c->wake && c->done + payload >= c->total)))
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&tls_events, ev, size, flags)) {
		count(TLS_CNT_CHUNKS_LOST, 1);
	} else {
		count(TLS_CNT_CHUNKS, 1);
		count(TLS_CNT_BYTES, n);
	}
	c->done += payload;
	return 0;
}

static __always_inline int same_flow(const struct flow_key *a, const struct flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	for (int i = 0; i < sizeof(*a) / 8; i++)
		if (x[i] != y[i])
			return 0;
	return 1;
}

/* tls_enforce runs the kernel rules on a read that starts a request. key
 * is remote -> local, which is client -> server when this process is the
 * server (a client reading a response never starts with a method). A read
 * too short to tell (Go's net/http reads the next request's first byte
 * alone while a handler runs, so a pipelined request arrives as 1 byte +
 * the rest) leaves its bytes for the stream's next read: splitting a
 * request's first bytes off does not hide it.
 * A global (not inlined) function: the verifier checks it once, not once
 * per path of every return probe that reads (which multiplied the match's
 * verified instructions several times over). */
__noinline int tls_enforce(const struct tls_stream_key *sk, const struct flow_key *key,
			   __u64 buf, __u64 total)
{
	struct enforce_src src = { .kind = ENFORCE_SRC_USER, .uptr = buf };
	struct enforce_verdict v = {};

	if (!sk || !key || !enforce_active())
		return 0;
	struct tls_carry *cr = bpf_map_lookup_elem(&tls_req_carry, sk);
	if (cr) {
		if (same_flow(&cr->key, key)) {
			src.carry_len = cr->len & ENFORCE_MAX_CARRY;
			__builtin_memcpy(src.carry, cr->b, TLS_CARRY_BYTES);
		}
		bpf_map_delete_elem(&tls_req_carry, sk);
	}
	__u64 avail = total + src.carry_len;
	if (avail >= ENFORCE_MIN_REQUEST) {
		if (avail > ENFORCE_MAX_SCAN)
			avail = ENFORCE_MAX_SCAN;
		if (enforce_match(&src, avail, key->dport, &v))
			enforce_apply(key, 0, &v, ENFORCE_REASON_TLS_RULE);
		return 0;
	}
	/* Short: keep the bytes if they can still become a request line.
	 * tmp is twice the carry so the variable-offset read stays inside
	 * it whatever the verifier knows of k + n. */
	struct tls_carry next = { .key = *key, .len = avail };
	__u8 tmp[2 * TLS_CARRY_BYTES] = {};
	__u32 k = src.carry_len & ENFORCE_MAX_CARRY;
	__u32 n = total;
	barrier_var(n); /* the compiler knows n < 16; the verifier must too */
	n &= ENFORCE_MAX_CARRY;
	__builtin_memcpy(tmp, src.carry, TLS_CARRY_BYTES);
	if (bpf_probe_read_user(tmp + k, n, (const void *)buf))
		return 0;
	__builtin_memcpy(next.b, tmp, TLS_CARRY_BYTES);
	switch (next.b[0]) {
	case 'G': case 'P': case 'H': case 'D': case 'O':
		bpf_map_update_elem(&tls_req_carry, sk, &next, BPF_ANY);
	}
	return 0;
}

/* sk_conn_id names a C library's connection in its (tgid, id, dir) stream
 * key and in the chunks' conn_id: the socket's address, shifted past the
 * slab object alignment, with bit 31 set so it never equals a Go stream's
 * fd. Userspace only compares it (a reused id of another connection is
 * told apart by its 4-tuple). */
static __always_inline __u32 sk_conn_id(__u64 sk)
{
	return (__u32)(sk >> 6) | 0x80000000u;
}

/* emit sends total bytes at buf as chunks of the (tgid, conn, dir) stream
 * of socket sk and advances its offset by total, whatever could be
 * copied. */
static __always_inline void emit(__u32 tgid, __u32 conn, struct sock *sk, __u8 dir, __u64 buf, __u64 total)
{
	struct emit_ctx c = {};

	if (total == 0)
		return;
	count(TLS_CNT_CALLS, 1);
	if (!sk) {
		count(TLS_CNT_NO_FD, 1);
		return;
	}
	if (sock_key(sk, dir, &c.key)) {
		count(TLS_CNT_NOT_SOCKET, 1);
		return;
	}
	struct tls_stream_key skey = {.tgid = tgid, .fd = conn, .dir = dir};
	__u64 *off = bpf_map_lookup_elem(&tls_offsets, &skey);
	__u64 start = 0;
	if (off) {
		start = __sync_fetch_and_add(off, total);
	} else {
		__u64 next = total;
		/* Losing the race to create the entry means another call
		 * on the stream took [0, its total): go after it. */
		if (bpf_map_update_elem(&tls_offsets, &skey, &next, BPF_NOEXIST)) {
			off = bpf_map_lookup_elem(&tls_offsets, &skey);
			if (off)
				start = __sync_fetch_and_add(off, total);
		}
	}
	/* Match first: the flag must be in place before anything else can
	 * happen on the flow. */
	if (dir == TLS_DIR_READ) {
		tls_enforce(&skey, &c.key, buf, total);
		/* Protect mode's hold point: the response waits at tcx until
		 * the agent has judged these bytes (hold.h), so the agent must
		 * see them now, not on its next poll. */
		c.wake = hold_tls_note(&c.key, (__u32)(start + total));
	}
	c.buf = buf;
	c.total = total;
	c.ts = bpf_ktime_get_ns();
	c.seq = (__u32)start;
	c.pid = tgid;
	c.fd = conn;
	c.source = dir == TLS_DIR_WRITE ? CHUNK_SRC_TLS_WRITE : CHUNK_SRC_TLS_READ;
	bpf_loop(TLS_MAX_CHUNKS_PER_CALL, emit_piece, &c, 0);
}

/* emit_fd is emit for a call that knows its socket by fd (Go). */
static __always_inline void emit_fd(__u32 tgid, int fd, __u8 dir, __u64 buf, __u64 total)
{
	if (total == 0)
		return;
	if (fd < 0) {
		count(TLS_CNT_CALLS, 1);
		count(TLS_CNT_NO_FD, 1);
		return;
	}
	emit(tgid, fd, fd_sock(fd), dir, buf, total);
}

/* ---- C libraries: OpenSSL, GnuTLS ---- */

SEC("uprobe")
int tls_lib_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 cookie = bpf_get_attach_cookie(ctx);
	tls_watch_mark(id >> 32);
	struct tls_call call = {
		.ctx = PT_REGS_PARM1(ctx),
		.buf = PT_REGS_PARM2(ctx),
		.count_ptr = PT_REGS_PARM4(ctx),
		.dir = TLS_COOKIE_DIR(cookie),
		.mode = TLS_COOKIE_MODE(cookie),
	};
	/* A handshake nested in a read keeps the outer call's record. */
	if (call.mode == TLS_MODE_HANDSHAKE)
		bpf_map_update_elem(&tls_active, &id, &call, BPF_NOEXIST);
	else
		bpf_map_update_elem(&tls_active, &id, &call, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int tls_lib_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct tls_call *call = bpf_map_lookup_elem(&tls_active, &id);

	if (!call)
		return 0;
	/* The handshake return must not end an enclosing read's record. */
	if (call->mode != TLS_COOKIE_MODE(cookie))
		return 0;
	struct tls_call c = *call;
	bpf_map_delete_elem(&tls_active, &id);

	__u64 rc = PT_REGS_RC(ctx);
	__u64 n = 0;
	switch (c.mode) {
	case TLS_MODE_RET_INT32:
		if ((__s32)rc > 0)
			n = (__u32)rc;
		break;
	case TLS_MODE_RET_INT64:
		if ((__s64)rc > 0)
			n = rc;
		break;
	case TLS_MODE_RET_EX:
		if ((__s32)rc > 0 && c.count_ptr)
			bpf_probe_read_user(&n, sizeof(n), (void *)c.count_ptr);
		break;
	default:
		return 0;
	}
	if (n == 0)
		return 0;
	if (!c.sk) {
		/* No socket I/O inside the call. A memory-BIO process (the
		 * only ones with a tls_last_rsk entry) read its socket just
		 * before: that socket is this read's, and it refreshes the
		 * SSL*'s entry - an SSL* freed and reallocated for a new
		 * connection would otherwise keep the old, freed socket (its
		 * handshake does no I/O inside a call either). Else the
		 * SSL*'s socket from an earlier call: a read served from the
		 * library's buffer, or a memory-BIO write. */
		struct tls_ssl_key k = {.tgid = tgid, .ctx = c.ctx};
		__u64 *sk = NULL;
		if (c.dir == TLS_DIR_READ)
			sk = bpf_map_lookup_elem(&tls_last_rsk, &id);
		if (sk) {
			c.sk = *sk;
			bpf_map_update_elem(&tls_ssl_sk, &k, sk, BPF_ANY);
		} else if ((sk = bpf_map_lookup_elem(&tls_ssl_sk, &k))) {
			c.sk = *sk;
		}
	}
	emit(tgid, sk_conn_id(c.sk), (struct sock *)c.sk, c.dir, c.buf, n);
	return 0;
}

/* note_sk binds the socket of a thread's socket I/O to the TLS call the
 * thread is in. */
static __always_inline void note_sk(__u64 id, __u64 sk, bool is_read)
{
	struct tls_call *call = bpf_map_lookup_elem(&tls_active, &id);

	if (!sk)
		return;
	if (!call) {
		__u32 tgid = id >> 32;
		if (is_read && bpf_map_lookup_elem(&tls_track_tgid, &tgid))
			bpf_map_update_elem(&tls_last_rsk, &id, &sk, BPF_ANY);
		return;
	}
	if (call->sk == sk)
		return;
	call->sk = sk;
	struct tls_ssl_key k = {.tgid = id >> 32, .ctx = call->ctx};
	bpf_map_update_elem(&tls_ssl_sk, &k, &sk, BPF_ANY);
}

#define AW_IPPROTO_TCP 6

static __always_inline int on_sock_length(struct sock_length_args *ctx, bool is_read)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (!tls_watched(id >> 32))
		return 0;
	if (ctx->protocol != AW_IPPROTO_TCP)
		return 0;
	count(TLS_CNT_FD_WATCHED, 1);
	note_sk(id, ctx->sk, is_read);
	return 0;
}

SEC("tracepoint/sock/sock_recv_length")
int tls_sock_recv(struct sock_length_args *ctx)
{
	return on_sock_length(ctx, true);
}

SEC("tracepoint/sock/sock_send_length")
int tls_sock_send(struct sock_length_args *ctx)
{
	return on_sock_length(ctx, false);
}

/* Fallback for kernels without the sock tracepoints: the socket syscalls,
 * the fd resolved to its socket. */
static __always_inline void note_fd(long fd, bool is_read)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (!tls_watched(id >> 32))
		return;
	count(TLS_CNT_FD_WATCHED, 1);
	if (fd < 0)
		return;
	note_sk(id, (__u64)fd_sock(fd), is_read);
}

#define FD_TRACEPOINT(name, is_read)                                 \
	SEC("tracepoint/syscalls/sys_enter_" #name)                  \
	int tls_enter_##name(struct trace_event_raw_sys_enter *ctx) \
	{                                                            \
		note_fd((long)ctx->args[0], is_read);                \
		return 0;                                            \
	}

FD_TRACEPOINT(read, true)
FD_TRACEPOINT(write, false)
FD_TRACEPOINT(readv, true)
FD_TRACEPOINT(writev, false)
FD_TRACEPOINT(recvfrom, true)
FD_TRACEPOINT(sendto, false)
FD_TRACEPOINT(recvmsg, true)
FD_TRACEPOINT(sendmsg, false)

/* ---- Go crypto/tls ---- */

/* go_sysfd follows tls.Conn.conn (net.Conn iface) -> *net.TCPConn ->
 * *netFD -> poll.FD.Sysfd. */
static __always_inline int go_sysfd(__u64 tls_conn)
{
	__u64 data = 0, netfd = 0;
	__s64 fd = -1;

	if (bpf_probe_read_user(&data, sizeof(data), (void *)(tls_conn + go_iface_data_off)) || !data)
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(data + go_conn_fd_off)) || !netfd)
		return -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(netfd + go_netfd_sysfd_off)))
		return -1;
	return fd;
}

/* Register ABI (Go >= 1.17): RAX receiver, RBX b.ptr, RCX b.len, R14 g. */
SEC("uprobe")
int tls_go_enter(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct tls_go_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = ctx->r14};
	struct tls_call call = {
		.ctx = ctx->ax,
		.buf = ctx->bx,
		.dir = TLS_COOKIE_DIR(cookie),
		.mode = TLS_MODE_RET_INT64,
	};
	/* (*Conn).Write writes all of b unless the connection fails, and RET
	 * probes are single-stepped (~10 us each), so writes are emitted here
	 * with n = len(b) and get no RET probes. A read finds its fd when it
	 * returns data (net/http's background 1-byte reads often do not). */
	if (call.dir == TLS_DIR_WRITE) {
		if ((__s64)ctx->cx > 0)
			emit_fd(k.tgid, go_sysfd(call.ctx), call.dir, call.buf, ctx->cx);
		return 0;
	}
	bpf_map_update_elem(&tls_go_active, &k, &call, BPF_ANY);
	return 0;
}

/* A pt_regs field read the compiler cannot fold: with plain loads clang
 * turns the switch below into ctx + computed offset, which the verifier
 * rejects (a ctx pointer must be read at constant offsets). */
#define TLS_CTX_REG(ctx, f)                                                    \
	({                                                                     \
		__u64 _v;                                                      \
		asm volatile("%0 = *(u64 *)(%1 + %2)"                          \
			     : "=r"(_v)                                        \
			     : "r"(ctx), "i"(offsetof(struct pt_regs, f)));    \
		_v;                                                            \
	})

static __always_inline __u64 tls_reg_value(struct pt_regs *ctx, __u64 reg)
{
	switch (reg) {
	case TLS_REG_BX: return TLS_CTX_REG(ctx, bx);
	case TLS_REG_CX: return TLS_CTX_REG(ctx, cx);
	case TLS_REG_DX: return TLS_CTX_REG(ctx, dx);
	case TLS_REG_SI: return TLS_CTX_REG(ctx, si);
	case TLS_REG_DI: return TLS_CTX_REG(ctx, di);
	case TLS_REG_R8: return TLS_CTX_REG(ctx, r8);
	case TLS_REG_R9: return TLS_CTX_REG(ctx, r9);
	case TLS_REG_R10: return TLS_CTX_REG(ctx, r10);
	case TLS_REG_R11: return TLS_CTX_REG(ctx, r11);
	default: return TLS_CTX_REG(ctx, ax);
	}
}

/* Attached where (*Conn).Read knows n: at each RET (n in RAX, the fallback:
 * a RET is single-stepped, ~10-20 us a hit on our VMs), or at the one
 * conditional jump that tests n right after the plaintext was copied into
 * b (an emulated instruction; the register travels in the cookie, see
 * goReadDataPoint). Either is hit once per call that returns data. */
SEC("uprobe")
int tls_go_ret(struct pt_regs *ctx)
{
	struct tls_go_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = ctx->r14};
	struct tls_call *call = bpf_map_lookup_elem(&tls_go_active, &k);

	if (!call)
		return 0;
	struct tls_call c = *call;
	bpf_map_delete_elem(&tls_go_active, &k);
	__s64 n = tls_reg_value(ctx, TLS_COOKIE_REG(bpf_get_attach_cookie(ctx)));
	if (n > 0)
		emit_fd(k.tgid, go_sysfd(c.ctx), c.dir, c.buf, n);
	return 0;
}
