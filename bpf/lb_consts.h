/* lbxdp: tunables (override any of them with bcc cflags, e.g. -DMAX_FLOWS=65536) and the named
 * reasons a verdict is counted under. The reason enum is mirrored in lb/rewrite/verdicts.py. */
#ifndef LB_CONSTS_H
#define LB_CONSTS_H

#ifndef MAX_FLOWS
#define MAX_FLOWS 262144 /* entries in each of `flows` and `reverse` (LRU: the oldest go first) */
#endif

#ifndef MAX_SERVICES
#define MAX_SERVICES 4096 /* entries in `services`; service ids are below this too */
#endif

#ifndef MAX_REALS
#define MAX_REALS 4096 /* slots in `reals`; real ids index it directly */
#endif

#ifndef MAX_HASHED_SERVICES
/* rows of `hash_rings`: services XDP schedules itself (256 KiB a row) */
#define MAX_HASHED_SERVICES 16
#endif

#ifndef MAX_TX_PORTS
/* slots in `tx_ports`: a devmap is indexed by ifindex, so this bounds it */
#define MAX_TX_PORTS 4096
#endif

/* Time on the hot path is counted in jiffies (bpf_jiffies64(): one load; a nanosecond clock costs
 * 20-45 ns per packet here). A tick is 1/HZ s, and HZ is 100 to 1000, so a bound of N ticks is at
 * most N/100 s on any kernel. */
#ifndef NEXT_HOP_TTL_TICKS
#define NEXT_HOP_TTL_TICKS 100 /* a cached bpf_fib_lookup() answer is reused this long (≤ 1 s) */
#endif

#ifndef CLIENT_HOP_BITS
/* client_hops holds 1 << CLIENT_HOP_BITS slots (direct-mapped by address) */
#define CLIENT_HOP_BITS 12
#endif

#ifndef LAST_SEEN_SLACK_TICKS
/* last_seen_ns is rewritten once it is this far behind (≤ 0.12 s) */
#define LAST_SEEN_SLACK_TICKS 12
#endif

#define CLIENT_HOPS (1 << CLIENT_HOP_BITS)

/* Maglev in XDP (lb/sched/mh.py states the same numbers): a ring has MH_RING_SIZE slots, the prime
 * lb.sched.mh.DEFAULT_M, and a flow's slot is fmix32(fold ^ MH_SEED1) % MH_RING_SIZE. */
#define MH_RING_SIZE 65537
#define MH_SEED1 2654435761u
/* mh-fallback in XDP: the walk past an unavailable real makes at most this many probes, then the
 * daemon walks on (lb.rewrite.schedule.MH_FALLBACK_PROBES) */
#define MH_FALLBACK_PROBES 64

/* struct service_info.flags. SVC_F_HASH_PORT hashes the client port too (ipvsadm's sh-port, mh-port);
 * SVC_F_FALLBACK walks on to another real when the hashed one is unavailable (sh-fallback,
 * mh-fallback). SVC_F_DROP_MIDFLOW_MISS drops a TCP segment that opens no flow and has none (an ACK
 * flood's packets) here instead of passing it up: the daemon sets it for services whose scheduler
 * cannot give a mid-connection packet its real back (all but sh, dh, mh), whose first-packet path
 * would drop it too. */
#define SVC_F_HASH_PORT 0x2
#define SVC_F_DROP_MIDFLOW_MISS 0x4
#define SVC_F_FALLBACK 0x8

/* struct real_sched.flags: the real may take a new flow (weight > 0, healthy, not overloaded) */
#define REAL_F_AVAILABLE 0x1

#ifndef MAX_SCHED_ROWS
/* rows of each scheduler map but hash_rings (sched_seqs, bucket_tables, sched_dests): services of
 * that kind XDP decides itself */
#define MAX_SCHED_ROWS 256
#endif

#ifndef MAX_TEMPLATES
/* entries of `templates` (LRU): persistence templates XDP and the daemon share */
#define MAX_TEMPLATES 65536
#endif

/* rr/wrr: one scheduling cycle of at most SEQ_MAX real ids (wrr's is Σ weight / gcd long) */
#define SEQ_MAX 4096
/* sh/dh: the kernel's 256 buckets (ip_vs_sh.c, ip_vs_dh.c IP_VS_*_TAB_BITS) */
#define BUCKET_BITS 8
#define BUCKETS (1 << BUCKET_BITS)
/* lc, wlc, sed, nq, fo, ovf: XDP walks at most WALK_MAX reals; a larger service is the daemon's */
#define WALK_MAX 64

#define LB_AF_INET 2 /* bcc's include set has no linux/socket.h */
#define LB_IP_DF 0x4000
#define LB_IP_MF 0x2000
#define LB_IP_OFFSET 0x1fff
#define IPIP_TTL 64 /* outer TTL of an IPIP-encapsulated packet, as the kernel's ipip default */
#define NO_ID 0xffffffff /* "nothing to count" in the per-service / per-real counters */

/* forwarding method of a real (ipvsadm's -m / -g / -i); 0 marks an empty `reals` slot */
enum lb_forwarding {
	FWD_NONE = 0,
	FWD_MASQ = 1,
	FWD_ROUTE = 2,
	FWD_TUNNEL = 3,
};

/* Who decides a service's first packets (service_info.sched), and from which map row; mirrored by
 * lb.sched.xdpkind.XdpKind. SCHED_DAEMON: the first-packet path (NFQUEUE, Python). */
enum lb_sched {
	SCHED_DAEMON = 0,
	SCHED_MH = 1,  /* hash_rings[row]: Maglev ring, slot → real id (0: the daemon decides) */
	SCHED_SEQ = 2, /* rr, wrr: the cycle sched_seqs[row], position from sched_cursors[row] */
	SCHED_SH = 3,  /* bucket_tables[row], by source */
	SCHED_DH = 4,  /* bucket_tables[row], by destination */
	SCHED_LC = 5,  /* this and the rest: a walk over sched_dests[row] */
	SCHED_WLC = 6,
	SCHED_SED = 7,
	SCHED_NQ = 8,
	SCHED_FO = 9,
	SCHED_OVF = 10,
};

/* bits of flow_state.tcp_seen / reverse_state.tcp_seen: what the flow's TCP segments carried */
enum lb_tcp_seen {
	SEEN_ESTABLISHED = 1, /* an ACK without SYN: the handshake got past its first segment */
	SEEN_FIN = 2,
	SEEN_RST = 4,
};

/* Why a packet got its verdict; `reason_counts` is indexed by these. Order is ABI: append only. */
enum lb_reason {
	/* ARP, IPv6, VLAN-tagged, anything not plain Ethernet IPv4 */
	REASON_PASS_NOT_IPV4 = 0,
	/* IPv4 header truncated or lying (ihl, tot_len) */
	REASON_DROP_BAD_IPV4 = 1,
	/* ihl > 5: left to the kernel */
	REASON_PASS_IP_OPTIONS = 2,
	/* MF or a fragment offset: left to the kernel */
	REASON_PASS_FRAGMENT = 3,
	REASON_PASS_ICMP = 4,
	/* IPIP, GRE, SCTP, … */
	REASON_PASS_OTHER_L4 = 5,
	/* TCP/UDP header truncated, doff < 5, doff*4 past the packet */
	REASON_PASS_BAD_L4 = 6,
	/* no service and no reverse (masquerading) entry */
	REASON_PASS_NOT_VIP = 7,
	/* a service, but no flow yet: first packet path */
	REASON_PASS_FLOW_MISS = 8,
	/* the flow names an empty real slot */
	REASON_PASS_NO_REAL = 9,
	/* masquerading with TTL <= 1: the kernel sends time-exceeded */
	REASON_PASS_TTL_EXCEEDED = 10,
	/* fib lookup: no route, unreachable, local, forwarding off */
	REASON_PASS_NO_ROUTE = 11,
	/* fib lookup: the packet exceeds the egress MTU */
	REASON_PASS_FRAG_NEEDED = 12,
	/* next hop unresolved: the kernel resolves and forwards */
	REASON_PASS_NO_NEIGH = 13,
	/* egress is neither the ingress nor in tx_ports */
	REASON_PASS_NOT_TX_PORT = 14,
	/* IPIP real but no tunnel source configured */
	REASON_PASS_NO_TUNNEL_SRC = 15,
	/* bpf_xdp_adjust_head refused to grow the head: unchanged */
	REASON_PASS_NO_HEADROOM = 16,
	/* the head grew but the new headers do not fit: cannot happen */
	REASON_ABORTED_ENCAP = 17,
	/* client → real, out of the ingress interface */
	REASON_TX_FORWARD = 18,
	/* client → real, out of another interface */
	REASON_REDIRECT_FORWARD = 19,
	/* real → client (masquerading), out of the ingress interface */
	REASON_TX_REVERSE = 20,
	/* real → client (masquerading), out of another interface */
	REASON_REDIRECT_REVERSE = 21,
	/* a SYN on a flow that saw FIN or RST: a new connection, scheduled anew */
	REASON_PASS_FLOW_REUSE = 22,
	/* a first packet of a service XDP decides, but its scheduler's map says "ask the daemon" */
	REASON_PASS_HASH_EMPTY = 23,
	/* XDP may schedule no more flows until the daemon's next sweep grants some */
	REASON_PASS_HASH_BUDGET = 24,
	/* TCP without SYN, no flow, a service with SVC_F_DROP_MIDFLOW_MISS */
	REASON_DROP_NO_FLOW_NOT_SYN = 25,
	REASON_MAX = 26,
};

#endif /* LB_CONSTS_H */
