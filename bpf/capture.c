// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/*
 * capture.c - the TC capture sensor. Two tcx programs (ingress, egress) copy
 * bounded chunks of TCP payload, plus payload-less SYN/FIN/RST segments, into
 * the `chunks` ring buffer. Capture only observes: every path returns
 * TCX_NEXT so traffic is never blocked or altered by this file.
 *
 * All packet reads go through bpf_skb_load_bytes: it works on non-linear
 * skbs (GRO/GSO super-packets keep their payload in page frags) and keeps
 * the verifier story simple (no data/data_end pointer juggling).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "apiwarden_events.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define ETH_HLEN_ 14
#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define IPPROTO_TCP_ 6
#define IPV4_MIN_HLEN 20
#define IPV6_HLEN 40
#define TCP_MIN_HLEN 20
#define IP_OFFSET_MASK 0x1FFF

/* IPv6 extension headers chased before the TCP header; a longer chain is
 * counted (CNT_NOT_PARSED) and passed. Real traffic rarely has more than one. */
#define MAX_IPV6_EXT_HDRS 4
/* Entries of the port filter (volatile const ports[]). */
#define MAX_PORTS 16
/* Default ring buffer size; userspace overrides it with MaxEntries. */
#define DEFAULT_RINGBUF_BYTES (8 << 20)

_Static_assert((MAX_CHUNK_DATA & (MAX_CHUNK_DATA - 1)) == 0,
	       "MAX_CHUNK_DATA must be a power of two (copy length mask)");

/* Settings, fixed by the loader before load (CollectionSpec.Variables). The
 * verifier sees their real values, so chunk_max bounds the copy length. */
volatile const __u32 chunk_max = MAX_CHUNK_DATA;
volatile const __u16 ports[MAX_PORTS] = {};
volatile const __u32 n_ports = 0; /* 0: every port */
/* Wake the reader only once this many bytes wait in the ring buffer; it
 * polls on a short timer for the rest. One wakeup per record costs the agent
 * an epoll round trip per segment; batching trades a few milliseconds of
 * observation latency for it. A request segment held for its verdict
 * (protect mode's hold point) wakes the reader at once (wake_ports). 0: wake
 * on every record. */
volatile const __u32 wakeup_bytes = 0;

/* Copy budgets (issue #8: copy only what the model needs). Each HTTP/1
 * message a flow carries is copied up to a budget counted from its first
 * byte (head + body prefix); the rest of the message is counted, not copied,
 * and its chunks carry AW_CHUNK_SKIPPED so userspace skips it as intended.
 * The defaults cover what the parser keeps (head limit + body limit) for
 * requests and a shorter body prefix for responses, which only schema
 * inference and sensitive-data tagging read. 0: unlimited. */
volatile const __u32 request_budget = 0;
volatile const __u32 response_budget = 0;
/* 0: no budgets at all (no per-message state, every byte copied); the
 * per-port overrides apply only when this is set. */
volatile const __u32 budgets_on = 0;

/* A message starts at a segment that begins with a request line ("GET ",
 * "OPTIONS "...: 3..7 upper-case letters and a space) or "HTTP/". A message
 * whose head starts inside a segment (pipelining) is not seen: it stays
 * under the budget of the message before it, and a skip there is a gap to
 * the parser, which resynchronises. Streams that never start a message
 * (HTTP/2 from its "PRI *" preface on, other protocols) keep no state and
 * are copied as before.
 *
 * TLS ciphertext is the exception: userspace ignores a flow direction whose
 * first bytes are a TLS record header (the TLS probes see its plaintext),
 * yet copying its records cost every HTTPS request ~1 us of softirq here
 * and a ring record, a decode and a flow lookup in the agent (issue #8).
 * A direction that starts with a record header gets the budget
 * BUDGET_CIPHERTEXT: its first segment is copied up to TLS_PEEK_BYTES (so
 * userspace still sees and ignores the flow), later segments are not
 * captured at all unless they carry FIN/RST (the flow's end) or go to a
 * held port (protect mode's hold point releases a segment when its chunk
 * has been through the pipeline), which are copied up to TLS_PEEK_BYTES.
 * A later message start ("GET ", "HTTP/") on the same direction still
 * rewrites the state, so a flow cannot hide a plaintext request behind a
 * TLS-looking first segment. */
#define BUDGET_CIPHERTEXT 0xFFFFFFFFu
#define TLS_PEEK_BYTES 8
struct budget_state {
	__u32 start_seq; /* sequence number of the message's first byte */
	__u32 budget;    /* bytes of the message to copy; 0: unlimited;
			  * BUDGET_CIPHERTEXT: a TLS record stream */
};

#define MAX_BUDGET_FLOWS 65536
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_BUDGET_FLOWS);
	__type(key, struct flow_key);
	__type(value, struct budget_state);
} budget_flows SEC(".maps");

/* Per-port overrides set from userspace (per-service limits): server port
 * -> budgets, looked up only at message starts. */
#define MAX_BUDGET_PORTS 256
struct port_budget {
	__u32 request;  /* 0: unlimited */
	__u32 response; /* 0: unlimited */
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BUDGET_PORTS);
	__type(key, __u16);
	__type(value, struct port_budget);
} port_budgets SEC(".maps");

/* Server ports whose requests protect mode holds for a verdict (set from
 * userspace beside the hold point's ports): a request segment to one of
 * them wakes the reader at once, at ingress, instead of waiting for the
 * batched wakeup or for the agent's queue reader to flush. The segment's
 * verdict waits on this chunk; with the wakeup here the chunk is on its way
 * to the pipeline while the kernel still hands the segment to the queue,
 * rather than after the queue reader woke up (two wakeups in series). The
 * wakeup (an irq_work) costs a few microseconds of the packet's softirq,
 * paid only by held requests. */
#define MAX_WAKE_PORTS 256
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_WAKE_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} wake_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, DEFAULT_RINGBUF_BYTES);
} chunks SEC(".maps");

/* The event is ~16 KiB, far beyond the 512-byte BPF stack: build it in a
 * per-CPU scratch slot and hand it to bpf_ringbuf_output with only the bytes
 * actually used (header + len). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct chunk_event);
} scratch SEC(".maps");

/* Interfaces the capture programs are attached to, kept by the loader:
 * ifindex -> WATCH_* bits saying which hooks capture there. A packet is
 * captured once per host, not once per hook: loopback traffic crosses lo's
 * egress and then its ingress (the loader sets only WATCH_INGRESS on lo),
 * and a forwarded packet (container to container through the host) that
 * entered through a watched interface was captured there, so egress skips
 * it. An interface missing from the map captures both ways. */
#define MAX_WATCHED_IFACES 4096
#define WATCH_INGRESS 1
#define WATCH_EGRESS 2
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_WATCHED_IFACES);
	__type(key, __u32);
	__type(value, __u8);
} watched_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} capture_counters SEC(".maps");

/* Keeps enum capture_counter in BTF so bpf2go generates the Go names from
 * this one definition; it lives in .rodata, which exists anyway. */
volatile const enum capture_counter capture_counter_max = CNT_MAX;

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&capture_counters, &idx);

	if (v)
		*v += n; /* per-CPU slot: no atomics needed */
}

static __always_inline int port_wanted(__u16 sport, __u16 dport)
{
	__u32 n = n_ports;

	if (n == 0)
		return 1;
	for (int i = 0; i < MAX_PORTS; i++) {
		if (i >= n)
			break;
		if (ports[i] == sport || ports[i] == dport)
			return 1;
	}
	return 0;
}

/* Where the TCP header starts and where the IP packet ends. */
struct l3_info {
	__u32 l4_off;
	__u32 end; /* offset just past the IP payload, clipped to skb->len */
};

/* parse_ipv4 returns 1 when the packet is TCP and fills li; 0 otherwise
 * (the caller has already counted why). */
static __always_inline int parse_ipv4(struct __sk_buff *skb, __u32 off,
				      struct flow_key *key, struct l3_info *li)
{
	struct iphdr ip;
	__u32 hlen, tot;

	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0) {
		count(CNT_MALFORMED, 1);
		return 0;
	}
	if (ip.protocol != IPPROTO_TCP_) {
		count(CNT_NON_TCP, 1);
		return 0;
	}
	hlen = (__u32)ip.ihl * 4;
	tot = bpf_ntohs(ip.tot_len);
	if (hlen < IPV4_MIN_HLEN || (tot != 0 && tot < hlen)) {
		count(CNT_MALFORMED, 1);
		return 0;
	}
	/* A later fragment has no TCP header; reassembly is not our job. */
	if (bpf_ntohs(ip.frag_off) & IP_OFFSET_MASK) {
		count(CNT_NOT_PARSED, 1);
		return 0;
	}
	__builtin_memcpy(key->saddr, &ip.saddr, 4);
	__builtin_memcpy(key->daddr, &ip.daddr, 4);
	key->family = AW_AF_INET;
	li->l4_off = off + hlen;
	/* tot_len 0 is BIG TCP (>64 KiB GSO): the skb length is the truth.
	 * Otherwise tot_len excludes Ethernet padding of short frames. */
	li->end = tot ? off + tot : skb->len;
	if (li->end > skb->len)
		li->end = skb->len;
	return 1;
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, __u32 off,
				      struct flow_key *key, struct l3_info *li)
{
	struct ipv6hdr ip6;
	__u32 plen, l4;
	__u8 nexthdr;

	if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0) {
		count(CNT_MALFORMED, 1);
		return 0;
	}
	__builtin_memcpy(key->saddr, &ip6.saddr, 16);
	__builtin_memcpy(key->daddr, &ip6.daddr, 16);
	key->family = AW_AF_INET6;
	plen = bpf_ntohs(ip6.payload_len);
	li->end = plen ? off + IPV6_HLEN + plen : skb->len; /* 0: jumbo/BIG TCP */
	if (li->end > skb->len)
		li->end = skb->len;
	nexthdr = ip6.nexthdr;
	l4 = off + IPV6_HLEN;

	for (int i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
		struct {
			__u8 next;
			__u8 len;
			__be16 frag_off; /* fragment header only */
		} ext;

		switch (nexthdr) {
		case IPPROTO_TCP_:
			li->l4_off = l4;
			return 1;
		case 0:   /* hop-by-hop */
		case 43:  /* routing */
		case 60:  /* destination options */
		case 44:  /* fragment */
		case 51:  /* AH */
			break;
		default:
			count(CNT_NON_TCP, 1);
			return 0;
		}
		if (bpf_skb_load_bytes(skb, l4, &ext, sizeof(ext)) < 0) {
			count(CNT_MALFORMED, 1);
			return 0;
		}
		if (nexthdr == 44) {
			if (bpf_ntohs(ext.frag_off) & 0xFFF8) {
				count(CNT_NOT_PARSED, 1);
				return 0;
			}
			l4 += 8;
		} else if (nexthdr == 51) {
			l4 += ((__u32)ext.len + 2) * 4;
		} else {
			l4 += ((__u32)ext.len + 1) * 8;
		}
		nexthdr = ext.next;
	}
	if (nexthdr == IPPROTO_TCP_) {
		li->l4_off = l4;
		return 1;
	}
	count(CNT_NOT_PARSED, 1);
	return 0;
}

/* emit_chunks copies pay_len payload bytes at pay_off into chunk events,
 * using the header fields the caller left in the per-CPU scratch event (seq
 * included), copying at most copy_len bytes.
 *
 * It is a global (non-static, noinline) function on purpose: the verifier
 * checks it once with unknown arguments instead of once per parse path of
 * the caller, which keeps verification far from the instruction limit.
 *
 * A super-packet is split into chunks of at most chunk_max bytes. SYN goes
 * on the first chunk, FIN/RST on the last, so seq accounting in userspace
 * matches TCP. payload_len of a chunk is the payload it stands for: its own
 * length, or for the last emitted chunk everything left (the untaken tail is
 * then a visible gap, not a silent loss). */
__noinline int emit_chunks(struct __sk_buff *skb, __u32 pay_off, __u32 pay_len,
			   __u32 copy_len, __u32 flags)
{
	struct chunk_event *ev;
	__u32 zero = 0, remaining = pay_len, cmax = chunk_max, seq;
	/* Bytes past copy_len are skipped (copy budget): they ride as the
	 * missing tail of the last chunk, flagged, instead of being copied. */
	__u32 skipped = copy_len < pay_len ? pay_len - copy_len : 0;

	if (skipped) {
		remaining = copy_len;
		count(CNT_SEGMENTS_SKIPPED, 1);
		count(CNT_BYTES_SKIPPED, skipped);
	}

	ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return 0;
	seq = ev->seq; /* left by the caller: BPF functions take five arguments */
	if (cmax == 0 || cmax > MAX_CHUNK_DATA)
		cmax = MAX_CHUNK_DATA;

	for (int i = 0; i < MAX_CHUNKS_PER_SKB; i++) {
		__u32 n = remaining < cmax ? remaining : cmax;
		int last = (i == MAX_CHUNKS_PER_SKB - 1) || n == remaining;
		__u8 f = flags & (AW_TCP_PSH | AW_TCP_ACK);

		if (i == 0)
			f |= flags & AW_TCP_SYN;
		if (last)
			f |= flags & (AW_TCP_FIN | AW_TCP_RST);
		if (last && skipped)
			f |= AW_CHUNK_SKIPPED;
		ev->seq = seq;
		ev->len = n;
		ev->payload_len = last ? remaining + skipped : n;
		ev->tcp_flags = f;

		/* Re-state the bound so the verifier keeps it across the
		 * min() above (clang may fold the comparison away). */
		n &= 0x7FFF;
		if (n > MAX_CHUNK_DATA)
			return 0;
		if (n > 0) {
			/* The helper wants a length provably in 1..MAX; clang
			 * tests n > 0 on a copy the verifier does not link, so
			 * derive the length arithmetically: for n in 1..MAX,
			 * ((n-1) & (MAX-1)) + 1 == n. The barrier stops clang
			 * from folding the mask away. */
			__u32 cp = n - 1;

			barrier_var(cp);
			cp = (cp & (MAX_CHUNK_DATA - 1)) + 1;
			if (bpf_skb_load_bytes(skb, pay_off, ev->data, cp) < 0) {
				count(CNT_MALFORMED, 1);
				return 0;
			}
		}
		/* Batched wakeups: wake the reader only for the record that
		 * carries the waiting data across wakeup_bytes, not for every
		 * record while it stays above (issue #8: a forced wakeup is an
		 * irq_work, ~5 us of this softirq in a VM, and the reader woken
		 * by the crossing reads on until the buffer is empty). Two CPUs
		 * crossing together may both miss the edge; the reader's poll
		 * timer collects the data then. */
		__u64 wake = 0;
		if (wakeup_bytes) {
			__u64 avail = bpf_ringbuf_query(&chunks, BPF_RB_AVAIL_DATA);
			__u64 rec = (offsetof(struct chunk_event, data) + n + RINGBUF_HDR_SZ + 7) & ~7ULL;

			wake = avail < wakeup_bytes && avail + rec >= wakeup_bytes ?
				       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
			/* A held request's verdict waits on its chunk: wake at
			 * once, unless the data already waiting is past the
			 * threshold (its crossing woke the reader, which has not
			 * caught up yet and will read this record too). */
			if (wake == BPF_RB_NO_WAKEUP && avail < wakeup_bytes && last && n > 0 &&
			    ev->source == CHUNK_SRC_TC_INGRESS &&
			    bpf_map_lookup_elem(&wake_ports, &ev->key.dport))
				wake = BPF_RB_FORCE_WAKEUP;
		}
		if (bpf_ringbuf_output(&chunks, ev,
				       offsetof(struct chunk_event, data) + n, wake) < 0) {
			count(CNT_CHUNKS_LOST, 1);
			return 0;
		}
		count(CNT_CHUNKS_CAPTURED, 1);
		count(CNT_BYTES_CAPTURED, n);
		remaining -= n;
		pay_off += n;
		seq += n;
		if (last)
			break;
	}
	if (remaining) {
		count(CNT_CHUNKS_TRUNCATED, 1);
		count(CNT_BYTES_TRUNCATED, remaining);
	}
	return 0;
}

/* message_start tells what an HTTP/1 message starting at this segment is:
 * 1 a request, 2 a response, 0 neither. */
static __always_inline int message_start(struct __sk_buff *skb, __u32 pay_off, __u32 pay_len)
{
	__u8 b[8];

	if (pay_len < 8 || bpf_skb_load_bytes(skb, pay_off, b, sizeof(b)) < 0)
		return 0;
	if (b[0] == 'H' && b[1] == 'T' && b[2] == 'T' && b[3] == 'P' && b[4] == '/')
		return 2;
	/* HTTP/2's connection preface looks like a request line: its stream
	 * is not HTTP/1 and gets no budget. */
	if (b[0] == 'P' && b[1] == 'R' && b[2] == 'I' && b[3] == ' ')
		return 0;
	for (int i = 0; i < 8; i++) {
		if (b[i] == ' ')
			return i >= 3 ? 1 : 0;
		if (b[i] < 'A' || b[i] > 'Z')
			return 0;
	}
	return 0;
}

/* tls_record_start reports a TLS record header at the segment's start:
 * handshake, alert, change cipher spec or application data, version 3.x
 * (what userspace's looksTLS accepts). */
static __always_inline int tls_record_start(struct __sk_buff *skb, __u32 pay_off, __u32 pay_len)
{
	__u8 b[3];

	if (pay_len < 5 || bpf_skb_load_bytes(skb, pay_off, b, sizeof(b)) < 0)
		return 0;
	return b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03 && b[2] <= 0x04;
}

/* copy_allowance returns how many bytes of this segment's payload to copy
 * under its message's budget (see budget_flows); *cipher is set for a
 * later segment of a TLS record stream (BUDGET_CIPHERTEXT), which gets the
 * peek if the caller captures it at all. */
static __always_inline __u32 copy_allowance(struct __sk_buff *skb, struct flow_key *key,
					     __u32 pay_off, __u32 pay_len, __u32 seq, int *cipher)
{
	struct budget_state *st;
	__u32 off;
	int kind;

	if (pay_len == 0)
		return 0;
	kind = message_start(skb, pay_off, pay_len);
	if (kind) {
		struct budget_state ns = {.start_seq = seq};
		__u16 port = kind == 1 ? key->dport : key->sport;
		struct port_budget *pb = bpf_map_lookup_elem(&port_budgets, &port);

		if (kind == 1)
			ns.budget = pb ? pb->request : request_budget;
		else
			ns.budget = pb ? pb->response : response_budget;
		/* A keep-alive flow starts many messages: rewrite its entry in
		 * place (two word stores) rather than an LRU update, which takes
		 * the LRU lock and recycles a node per message. A racing reader
		 * on another CPU sees the old or the new message's budget; both
		 * only bound a copy. */
		st = bpf_map_lookup_elem(&budget_flows, key);
		if (st) {
			st->start_seq = ns.start_seq;
			st->budget = ns.budget;
		} else if (bpf_map_update_elem(&budget_flows, key, &ns, BPF_ANY) < 0) {
			count(CNT_BUDGET_FLOWS_LOST, 1);
		}
		if (ns.budget && pay_len > ns.budget)
			return ns.budget;
		return pay_len;
	}
	st = bpf_map_lookup_elem(&budget_flows, key);
	if (st && st->budget == BUDGET_CIPHERTEXT) {
		*cipher = 1;
		return pay_len < TLS_PEEK_BYTES ? pay_len : TLS_PEEK_BYTES;
	}
	if (!st && tls_record_start(skb, pay_off, pay_len)) {
		struct budget_state ns = {.start_seq = seq, .budget = BUDGET_CIPHERTEXT};

		if (bpf_map_update_elem(&budget_flows, key, &ns, BPF_ANY) < 0)
			count(CNT_BUDGET_FLOWS_LOST, 1);
		return pay_len < TLS_PEEK_BYTES ? pay_len : TLS_PEEK_BYTES;
	}
	if (!st || st->budget == 0)
		return pay_len;
	off = seq - st->start_seq;
	if (off >= st->budget)
		return 0;
	return st->budget - off < pay_len ? st->budget - off : pay_len;
}

/* seen_elsewhere reports whether another watched hook captures this packet. */
static __always_inline int seen_elsewhere(struct __sk_buff *skb, __u8 source)
{
	__u32 ifindex = skb->ifindex;
	__u8 want = source == CHUNK_SRC_TC_INGRESS ? WATCH_INGRESS : WATCH_EGRESS;
	__u8 *flags = bpf_map_lookup_elem(&watched_ifaces, &ifindex);

	if (flags && !(*flags & want))
		return 1;
	if (source == CHUNK_SRC_TC_INGRESS)
		return 0;
	__u32 iif = skb->ingress_ifindex;
	return iif != 0 && iif != ifindex && bpf_map_lookup_elem(&watched_ifaces, &iif) != 0;
}

static __always_inline int capture(struct __sk_buff *skb, __u8 source)
{
	struct flow_key key = {};
	struct l3_info li = {};
	struct tcphdr tcp;
	struct chunk_event *ev;
	__u32 zero = 0, doff, pay_off, pay_len;
	__u16 proto;
	__u8 flags;
	int ok;

	if (seen_elsewhere(skb, source)) {
		count(CNT_SEEN_ELSEWHERE, 1);
		return TCX_NEXT;
	}

	/* Loopback carries a zeroed Ethernet header with a real ethertype, so
	 * one Ethernet parse serves lo, veth and physical NICs alike. */
	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0) {
		count(CNT_NON_TCP, 1);
		return TCX_NEXT;
	}
	if (proto == bpf_htons(ETH_P_IP_)) {
		ok = parse_ipv4(skb, ETH_HLEN_, &key, &li);
	} else if (proto == bpf_htons(ETH_P_IPV6_)) {
		ok = parse_ipv6(skb, ETH_HLEN_, &key, &li);
	} else {
		count(CNT_NON_TCP, 1);
		return TCX_NEXT;
	}
	if (!ok)
		return TCX_NEXT;

	if (bpf_skb_load_bytes(skb, li.l4_off, &tcp, sizeof(tcp)) < 0) {
		count(CNT_MALFORMED, 1);
		return TCX_NEXT;
	}
	count(CNT_SEGMENTS_SEEN, 1);
	doff = (__u32)tcp.doff * 4;
	pay_off = li.l4_off + doff;
	if (doff < TCP_MIN_HLEN || pay_off > li.end) {
		count(CNT_MALFORMED, 1);
		return TCX_NEXT;
	}
	key.sport = bpf_ntohs(tcp.source);
	key.dport = bpf_ntohs(tcp.dest);
	if (!port_wanted(key.sport, key.dport)) {
		count(CNT_PORT_FILTERED, 1);
		return TCX_NEXT;
	}

	/* Byte 13 of the TCP header holds CWR..FIN; AW_TCP_* keep the low five
	 * bits' meaning, so a mask is the whole translation. */
	flags = ((__u8 *)&tcp)[13] & (AW_TCP_FIN | AW_TCP_SYN | AW_TCP_RST |
				      AW_TCP_PSH | AW_TCP_ACK);
	pay_len = li.end - pay_off;
	if (pay_len == 0 && !(flags & (AW_TCP_SYN | AW_TCP_FIN | AW_TCP_RST)))
		return TCX_NEXT; /* pure ACK: nothing for userspace */

	__u32 seq = bpf_ntohl(tcp.seq);
	__u32 copy_len = pay_len;
	int cipher = 0;
	if (budgets_on)
		copy_len = copy_allowance(skb, &key, pay_off, pay_len, flags & AW_TCP_SYN ? seq + 1 : seq,
					  &cipher);
	/* A later ciphertext segment is dropped from capture before the
	 * event is built; only the flow's end and held-port segments (their
	 * verdict waits on a chunk) go on, peeked. */
	if (cipher && !(flags & (AW_TCP_FIN | AW_TCP_RST)) &&
	    !(source == CHUNK_SRC_TC_INGRESS && bpf_map_lookup_elem(&wake_ports, &key.dport))) {
		count(CNT_CIPHERTEXT_SKIPPED, 1);
		return TCX_NEXT;
	}

	ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return TCX_NEXT;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->key = key;
	ev->ifindex = skb->ifindex;
	ev->pid = 0;
	ev->conn_id = 0;
	ev->source = source;
	ev->seq = seq;
	emit_chunks(skb, pay_off, pay_len, copy_len, flags);
	return TCX_NEXT;
}

SEC("tcx/ingress")
int capture_ingress(struct __sk_buff *skb)
{
	return capture(skb, CHUNK_SRC_TC_INGRESS);
}

SEC("tcx/egress")
int capture_egress(struct __sk_buff *skb)
{
	return capture(skb, CHUNK_SRC_TC_EGRESS);
}
