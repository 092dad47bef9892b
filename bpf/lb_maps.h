/* lbxdp: every map of the datapath, one line each. With LB_PIN_DIR defined (a string, passed as
 * -DLB_PIN_DIR="/sys/fs/bpf/lbxdp/<instance>") bcc adopts the map pinned there or creates and pins it. */
#ifndef LB_MAPS_H
#define LB_MAPS_H

/* bcc reads "type:path" in a map's section as "adopt the map pinned at path, or create and pin it". */
#ifdef LB_PIN_DIR
#define LB_MAP_TYPE(_type, _name) _type ":" LB_PIN_DIR "/" #_name
#else
#define LB_MAP_TYPE(_type, _name) _type
#endif

BPF_TABLE(LB_MAP_TYPE("hash", services), struct service_key, struct service_info, services, MAX_SERVICES); /* VIP:port/proto → service */
BPF_TABLE(LB_MAP_TYPE("array", reals), __u32, struct real_info, reals, MAX_REALS);                   /* real id → address, port, method */
BPF_TABLE(LB_MAP_TYPE("lru_hash", flows), struct flow_key, struct flow_state, flows, MAX_FLOWS);      /* client 5-tuple → real */
BPF_TABLE(LB_MAP_TYPE("lru_hash", reverse), struct flow_key, struct reverse_state, reverse, MAX_FLOWS); /* real→client 5-tuple → VIP:port */
BPF_TABLE(LB_MAP_TYPE("array", config), __u32, struct lb_config, config, 1);                         /* datapath settings, slot 0 */
BPF_XDP_REDIRECT_MAP(LB_MAP_TYPE("devmap", tx_ports), int, tx_ports, MAX_TX_PORTS);                  /* ifindex → ifindex, for XDP_REDIRECT */
BPF_TABLE(LB_MAP_TYPE("percpu_array", real_hops), __u32, struct next_hop, real_hops, MAX_REALS);     /* real id → cached next hop to it */
BPF_TABLE(LB_MAP_TYPE("percpu_array", client_hops), __u32, struct next_hop, client_hops, CLIENT_HOPS); /* hash of a client address → cached next hop */
BPF_TABLE(LB_MAP_TYPE("percpu_array", reason_counts), __u32, __u64, reason_counts, REASON_MAX);       /* verdict reason → packets */
BPF_TABLE(LB_MAP_TYPE("array", hash_rings), __u32, struct mh_ring, hash_rings, MAX_HASHED_SERVICES);  /* row → Maglev ring (slot → real id, 0: Python decides) */
BPF_TABLE(LB_MAP_TYPE("percpu_array", hash_budget), __u32, struct hash_budget, hash_budget, 1);     /* slot 0: flows XDP may still create */
BPF_TABLE(LB_MAP_TYPE("percpu_array", hash_conns), __u32, __u64, hash_conns, MAX_REALS);              /* real id → flows XDP scheduled itself */
BPF_TABLE(LB_MAP_TYPE("percpu_array", real_counts), __u32, struct traffic_counter, real_counts, MAX_REALS); /* real id → traffic (a service's is the sum of its reals') */

/* Per-CPU counters need no atomics: each CPU owns its slot. */
static __always_inline void count_traffic(struct traffic_counter *c, int outbound, __u64 bytes)
{
	if (!c)
		return;
	if (outbound) {
		c->out_packets += 1;
		c->out_bytes += bytes;
	} else {
		c->in_packets += 1;
		c->in_bytes += bytes;
	}
}

/* Stamp a flow entry, writing only what changed: last_seen once it is LAST_SEEN_SLACK_TICKS behind
 * (the sweeper's timeouts are seconds), the TCP bits when a new one shows up. An established flow's
 * entry is then read on every packet but written a few times a second, so its cache line stays
 * shared between CPUs instead of bouncing, and the nanosecond clock is read as rarely. */
static __always_inline void touch_flow(__u64 *last_seen_ns, __u32 *seen_jiffies, __u32 *tcp_seen, __u32 seen,
				       __u64 ticks)
{
	if ((__u32)ticks - *seen_jiffies >= LAST_SEEN_SLACK_TICKS || !*last_seen_ns) {
		*last_seen_ns = bpf_ktime_get_ns();
		*seen_jiffies = (__u32)ticks;
	}
	if ((*tcp_seen | seen) != *tcp_seen)
		*tcp_seen |= seen;
}

/* MurmurHash3's 32-bit finalizer (Austin Appleby, public domain): lb.sched.hashing.fmix32. */
static __always_inline __u32 fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* The Maglev slot of a client, as MaglevHashing.slot() computes it: mh_hash(fold(saddr, sport), MH_SEED1)
 * % M on host-order values, the port only with mh-port (pass 0 otherwise). */
static __always_inline __u32 mh_slot(__be32 saddr, __be16 sport)
{
	__u32 v = bpf_ntohl(saddr) + bpf_ntohs(sport);

	return fmix32(v ^ MH_SEED1) % MH_RING_SIZE;
}

/* Slot of a client address in client_hops: Fibonacci hashing (Knuth, TAOCP vol. 3 §6.4) spreads
 * addresses that differ only in their last octet over the whole table. */
static __always_inline __u32 client_hop_slot(__be32 addr)
{
	return ((__u32)addr * 0x9E3779B1u) >> (32 - CLIENT_HOP_BITS);
}

#endif /* LB_MAPS_H */
