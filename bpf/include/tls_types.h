/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tls_types.h - records and constants private to the TLS plaintext sensor
 * (bpf/tls.c). The chunk events it emits are the shared struct chunk_event
 * of apiwarden_events.h; what is here only travels between the sensor's own
 * programs and its Go loader (datapath/tls), never to other components.
 */
#ifndef APIWARDEN_TLS_TYPES_H
#define APIWARDEN_TLS_TYPES_H

/* Largest number of chunk events one TLS call is split into. A TLS read
 * returns at most one record (16 KiB), but a write may hand megabytes to
 * SSL_write at once; 64 chunks cover 1 MiB, the rest is counted as
 * truncated (the stream offset still advances, so userspace sees a gap). */
#define TLS_MAX_CHUNKS_PER_CALL 64

/* In-flight TLS calls per thread / goroutine. Entries normally live for one
 * call; a thread killed inside a call leaves one behind, so these are LRU. */
#define TLS_MAX_ACTIVE_CALLS 16384
/* (tgid, SSL*) -> struct sock *, learnt from the socket I/O made inside
 * TLS calls. */
#define TLS_MAX_SSL_FDS 65536
/* Processes whose library reads through a memory BIO (node). */
#define TLS_MAX_TRACKED_PROCS 4096
/* Unread bytes in the ring buffer past which an event wakes the reader;
 * below it the reader polls (datapath/tls pollInterval). */
#define TLS_WAKEUP_BYTES (1 << 20)
/* (tgid, fd, direction) -> stream offset. */
#define TLS_MAX_STREAMS 65536

/* Streams whose last read was too short to tell a request start (Go's
 * net/http reads a pipelined request's first byte alone, then the rest):
 * their bytes are carried into the next read's rule match. */
#define TLS_MAX_CARRIES 16384
/* Bytes carried: less than the shortest matched read (ENFORCE_MIN_REQUEST
 * of enforce_match.h). */
#define TLS_CARRY_BYTES 16

/* Probe cookie: the low byte is the direction, the next byte the mode,
 * the third (Go read data point) the register holding n (enum tls_reg). */
#define TLS_COOKIE_DIR(c) ((c) & 0xff)
#define TLS_COOKIE_MODE(c) (((c) >> 8) & 0xff)
#define TLS_COOKIE_REG(c) (((c) >> 16) & 0xff)

/* Where tls_go_ret finds n: RAX at a RET; at the Go read data point
 * (datapath/tls/gotls.go) whichever register the compiler chose. */
enum tls_reg {
	TLS_REG_AX = 0,
	TLS_REG_BX = 1,
	TLS_REG_CX = 2,
	TLS_REG_DX = 3,
	TLS_REG_SI = 4,
	TLS_REG_DI = 5,
	TLS_REG_R8 = 6,
	TLS_REG_R9 = 7,
	TLS_REG_R10 = 8,
	TLS_REG_R11 = 9,
};

enum tls_dir {
	TLS_DIR_READ = 0,
	TLS_DIR_WRITE = 1,
};

/* How the probed function reports the number of plaintext bytes. */
enum tls_mode {
	TLS_MODE_RET_INT32 = 1, /* int return is the byte count (SSL_read) */
	TLS_MODE_RET_EX = 2,    /* int return 1 = ok, count in *arg4 (SSL_read_ex,
				 * ssl_read_internal) */
	TLS_MODE_RET_INT64 = 3, /* ssize_t return is the byte count (GnuTLS) */
	TLS_MODE_HANDSHAKE = 4, /* no data: only binds syscall fds to the SSL* */
};

/* Per-CPU counters of the TLS sensor, index into tls_counters. */
enum tls_counter {
	TLS_CNT_CALLS = 0,       /* TLS read/write calls that returned data */
	TLS_CNT_CHUNKS,          /* chunk events written */
	TLS_CNT_BYTES,           /* plaintext bytes copied */
	TLS_CNT_CHUNKS_TRUNCATED,/* calls whose plaintext did not fit */
	TLS_CNT_BYTES_TRUNCATED, /* plaintext bytes not copied */
	TLS_CNT_CHUNKS_LOST,     /* ring buffer full: event dropped */
	TLS_CNT_NO_FD,           /* data returned but the socket fd is unknown */
	TLS_CNT_NOT_SOCKET,      /* fd is not an inet socket: no 4-tuple */
	TLS_CNT_READ_FAILED,     /* user memory could not be read */
	TLS_CNT_FD_WATCHED,      /* socket I/O of watched tgids (tls_watch.h) */
	TLS_CNT_MAX,
};

/* tls_call: what an entry probe leaves for the matching return probe. */
struct tls_call {
	__u64 ctx;          /* SSL* / gnutls_session_t / Go *tls.Conn */
	__u64 buf;          /* plaintext buffer */
	__u64 count_ptr;    /* TLS_MODE_RET_EX: where the byte count is written */
	__u64 sk;           /* C libraries: struct sock * of the call's socket, 0 until known
			     * (Go reads its fd from the receiver when the call returns) */
	__u8 dir;           /* enum tls_dir */
	__u8 mode;          /* enum tls_mode */
	__u8 _pad[6];
};

struct tls_ssl_key {
	__u32 tgid;
	__u32 _pad;
	__u64 ctx;
};

struct tls_go_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g;            /* goroutine pointer (R14 in the Go register ABI) */
};

struct tls_stream_key {
	__u32 tgid;
	__u32 fd;
	__u32 dir;
	__u32 _pad;
};

/* tls_carry: the start of a request seen by short reads, kept for the
 * next read on the stream. key tells a reused fd's new connection apart. */
struct tls_carry {
	struct flow_key key;
	__u32 len;
	__u8 b[TLS_CARRY_BYTES];
};

#endif /* APIWARDEN_TLS_TYPES_H */
