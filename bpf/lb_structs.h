/* lbxdp: the structs shared between the XDP program and user space (keys and values of the maps).
 * Mirrored field by field in lb/datapath/structs.py; tests/bpf/test_structs.py checks they agree. */
#ifndef LB_STRUCTS_H
#define LB_STRUCTS_H

/* services key: what a client addresses. Addresses and ports in network byte order. */
struct service_key {
	__be32 vip;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct service_info {
	__u32 service_id; /* index of service_counts */
	__u32 flags;	  /* SVC_F_* bits (lb_consts.h) */
	__u16 sched;	  /* enum lb_sched: who decides the first packets */
	__u16 row;	  /* the service's row in its scheduler's map */
	/* persistence (ipvsadm -p, -M): a client network's template lives this many seconds after its
	 * last new connection; 0: not persistent */
	__u32 persist_timeout;
	__be32 persist_mask; /* a template covers saddr & persist_mask */
};

/* reals value: where a real lives and how packets reach it */
struct real_info {
	__be32 addr;
	__be16 port;	 /* used by masquerading only (the other methods keep the port) */
	__u8 forwarding; /* enum lb_forwarding; FWD_NONE marks an empty slot */
	__u8 pad;
};

/* flows and reverse key: a 5-tuple exactly as it appears in the packet */
struct flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* flows value: the decision for client → VIP packets, and what the sweeper needs to age it */
struct flow_state {
	/* bpf_ktime_get_ns() of a recent packet (CLOCK_MONOTONIC), ≤ LAST_SEEN_SLACK_TICKS old */
	__u64 last_seen_ns;
	__u32 real_id;
	__u32 service_id;
	__u32 tcp_seen;	    /* enum lb_tcp_seen bits */
	__u32 seen_jiffies; /* low 32 bits of jiffies when last_seen_ns was written (XDP's own) */
};

/* reverse value: what a masqueraded reply's source becomes again */
struct reverse_state {
	__u64 last_seen_ns;
	__be32 vip;
	__be16 vport;
	__u16 pad;
	__u32 real_id;
	__u32 service_id;
	__u32 tcp_seen;
	__u32 seen_jiffies;
};

/* config value (one slot): settings of the whole datapath */
struct lb_config {
	__be32 tunnel_saddr; /* outer source of IPIP packets; 0 = IPIP disabled (packets PASS) */
	__u32 hop_epoch;     /* user space bumps it to invalidate every cached next hop at once */
};

/* real_hops and client_hops value (per CPU): a successful bpf_fib_lookup() answer, reused for
 * packets to the same address from the same ingress until `expires`, while hop_epoch is current
 * and the packet is no longer than one the lookup approved (its MTU check). */
struct next_hop {
	__u64 expires; /* jiffies from which the answer is asked again; 0 = empty */
	__be32 daddr;  /* the destination looked up: a slot is a cache line, not a key */
	__u32 ingress; /* ingress ifindex the lookup was made from */
	__u32 ifindex; /* egress */
	__u32 epoch;   /* lb_config.hop_epoch when cached */
	__u16 max_len; /* largest tot_len the lookup approved */
	__u8 smac[6];
	__u8 dmac[6];
	__u16 pad;
};

/* hash_rings value: one service's Maglev ring, slot → real id (0: the first-packet path decides).
 * A whole ring is one value, not MH_RING_SIZE array entries: an array keeps each entry in 8 bytes
 * (twice the memory), and user space writes a ring with one update instead of a batch of 65537. */
struct mh_ring {
	__u32 real_ids[MH_RING_SIZE];
};

/* sched_seqs value: one cycle of rr/wrr, real ids in the order the Python scheduler takes them; a
 * new flow takes real_ids[cursor++ % len], the cursor an atomic counter in sched_cursors. */
struct sched_seq {
	__u32 len;
	__u32 real_ids[SEQ_MAX];
};

/* bucket_tables value: sh/dh's 256 buckets, each the id of a real (whatever its availability) */
struct bucket_table {
	__u32 real_ids[BUCKETS];
};

/* sched_dests value: the reals a least-connection-family walk visits, in the service's order */
struct sched_dests {
	__u32 count;
	__u32 real_ids[WALK_MAX];
};

/* real_sched value: what a scheduler in XDP needs of a real beyond its address */
struct real_sched {
	__u32 weight;
	__u32 flags; /* REAL_F_* */
};

/* real_conns value: a real's connections as IPVS counts them (ESTABLISHED active, the rest
 * inactive), changed with atomic adds by XDP and rewritten by the daemon's sweep. Signed: a
 * decrement racing the sweep's write may go below 0 for an instant; readers take that as 0. */
struct real_conns {
	__s32 active;
	__s32 inactive;
};

/* templates key and value: a persistent service's client network → the real it sticks to */
struct template_key {
	__u32 service_id;
	__be32 client_net;
};

struct persist_template {
	__u64 expires_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) after which the template is dead */
	__u32 real_id;
	__u32 pad;
};

/* hash_budget value (per CPU): how many flows this CPU may still create in XDP. The daemon grants
 * `allowed` after each sweep (what it created so far plus its share of the room left below the flow
 * table's limit), so a SYN flood against a service scheduled in XDP cannot push established flows
 * out of the LRU between two sweeps. */
struct hash_budget {
	__u64 created; /* flows this CPU created in XDP, ever */
	__u64 allowed; /* it may create flows while created < allowed */
};

/* service_counts and real_counts value; "in" is client → real, "out" is real → client.
 * Bytes are IPv4 total lengths (no Ethernet header, no padding, no IPIP outer header). */
struct traffic_counter {
	__u64 in_packets;
	__u64 in_bytes;
	__u64 out_packets;
	__u64 out_bytes;
};

#endif /* LB_STRUCTS_H */
