/* lbxdp: the hashes of the datapath, each the twin of a Python function: the Maglev slot of a client
 * (lb.sched.hashing, lb.sched.mh) and the client_hops slot of an address. */
#ifndef LB_HASH_H
#define LB_HASH_H

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

#endif /* LB_HASH_H */
