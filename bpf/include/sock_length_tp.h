/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef APIWARDEN_SOCK_LENGTH_TP_H
#define APIWARDEN_SOCK_LENGTH_TP_H

/* Record of the sock_{send,recv}_length tracepoints (include/trace/events/
 * sock.h, Linux >= 6.3) after the 8-byte common header: a stable ABI, not
 * a kernel struct to relocate, so include it after vmlinux.h. Used by the
 * TLS socket binding and the process table. */
struct sock_length_args {
	__u64 common;
	__u64 sk;
	__u16 family;
	__u16 protocol;
	int ret;
	int flags;
};

#endif
