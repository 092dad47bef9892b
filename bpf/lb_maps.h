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

/* VIP:port/proto → service */
BPF_TABLE(LB_MAP_TYPE("hash", services), struct service_key, struct service_info, services,
	  MAX_SERVICES);
/* real id → address, port, method */
BPF_TABLE(LB_MAP_TYPE("array", reals), __u32, struct real_info, reals, MAX_REALS);
/* client 5-tuple → real */
BPF_TABLE(LB_MAP_TYPE("lru_hash", flows), struct flow_key, struct flow_state, flows, MAX_FLOWS);
/* real→client 5-tuple → VIP:port */
BPF_TABLE(LB_MAP_TYPE("lru_hash", reverse), struct flow_key, struct reverse_state, reverse,
	  MAX_FLOWS);
/* datapath settings, slot 0 */
BPF_TABLE(LB_MAP_TYPE("array", config), __u32, struct lb_config, config, 1);
/* ifindex → ifindex, for XDP_REDIRECT */
BPF_XDP_REDIRECT_MAP(LB_MAP_TYPE("devmap", tx_ports), int, tx_ports, MAX_TX_PORTS);
/* real id → cached next hop to it */
BPF_TABLE(LB_MAP_TYPE("percpu_array", real_hops), __u32, struct next_hop, real_hops, MAX_REALS);
/* hash of a client address → cached next hop */
BPF_TABLE(LB_MAP_TYPE("percpu_array", client_hops), __u32, struct next_hop, client_hops,
	  CLIENT_HOPS);
/* verdict reason → packets */
BPF_TABLE(LB_MAP_TYPE("percpu_array", reason_counts), __u32, __u64, reason_counts, REASON_MAX);
/* row → Maglev ring (slot → real id, 0: Python decides) */
BPF_TABLE(LB_MAP_TYPE("array", hash_rings), __u32, struct mh_ring, hash_rings, MAX_HASHED_SERVICES);
/* row → rr/wrr cycle, and its cursor (an atomic counter, apart so that a new cycle keeps it) */
BPF_TABLE(LB_MAP_TYPE("array", sched_seqs), __u32, struct sched_seq, sched_seqs, MAX_SCHED_ROWS);
BPF_TABLE(LB_MAP_TYPE("array", sched_cursors), __u32, __u64, sched_cursors, MAX_SCHED_ROWS);
/* row → sh/dh buckets */
BPF_TABLE(LB_MAP_TYPE("array", bucket_tables), __u32, struct bucket_table, bucket_tables,
	  MAX_SCHED_ROWS);
/* row → the reals a least-connection walk visits */
BPF_TABLE(LB_MAP_TYPE("array", sched_dests), __u32, struct sched_dests, sched_dests,
	  MAX_SCHED_ROWS);
/* real id → weight and availability, for the schedulers in XDP */
BPF_TABLE(LB_MAP_TYPE("array", real_sched), __u32, struct real_sched, real_sched, MAX_REALS);
/* real id → active and inactive connections (atomic; the sweep rewrites them) */
BPF_TABLE(LB_MAP_TYPE("array", real_conns), __u32, struct real_conns, real_conns, MAX_REALS);
/* (service, client network) → the real a persistent service keeps the client on */
BPF_TABLE(LB_MAP_TYPE("lru_hash", templates), struct template_key, struct persist_template,
	  templates, MAX_TEMPLATES);
/* slot 0: flows XDP may still create */
BPF_TABLE(LB_MAP_TYPE("percpu_array", hash_budget), __u32, struct hash_budget, hash_budget, 1);
/* real id → flows XDP scheduled itself */
BPF_TABLE(LB_MAP_TYPE("percpu_array", hash_conns), __u32, __u64, hash_conns, MAX_REALS);
/* real id → traffic (a service's is the sum of its reals') */
BPF_TABLE(LB_MAP_TYPE("percpu_array", real_counts), __u32, struct traffic_counter, real_counts,
	  MAX_REALS);

#endif /* LB_MAPS_H */
