/* lbxdp: the hashes of the datapath, each the twin of a Python function: the value sh and mh hash
 * (lb.sched.hashing.fold), the bucket of sh and dh (hash_32), the Maglev slot of a client and of an
 * mh-fallback probe (lb.sched.mh), and the client_hops slot of an address. tests/bpf/test_hash.py
 * runs each of them in a program of its own and compares it with Python on pinned values. */
#ifndef LB_HASH_H
#define LB_HASH_H

/* The kernel's hash_32() multiplier (include/linux/hash.h): lb.sched.hashing.GOLDEN_RATIO_32. */
#define LB_GOLDEN_RATIO_32 0x61C88647u

/* The value sh and mh hash, `ntohl(addr) + ntohs(port)` modulo 2^32: lb.sched.hashing.fold (pass a
 * 0 port when the service does not hash it). */
static __always_inline __u32 hash_fold(__be32 addr, __be16 port)
{
	return bpf_ntohl(addr) + bpf_ntohs(port);
}

/* The kernel's hash_32(val, bits), the top `bits` bits of val * GOLDEN_RATIO_32 (1 <= bits <= 32):
 * lb.sched.hashing.hash_32. ip_vs_sh.c and ip_vs_dh.c index their 256 buckets with it. It is named
 * apart from hash_32() of linux/hash.h, which bcc's include set pulls in, so that the datapath's hash
 * is this one whatever the headers tree holds. */
static __always_inline __u32 lb_hash_32(__u32 val, __u32 bits)
{
	return (val * LB_GOLDEN_RATIO_32) >> (32 - bits);
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
	__u32 v = hash_fold(saddr, sport);

	return fmix32(v ^ MH_SEED1) % MH_RING_SIZE;
}

/* The slot an mh-fallback walk probes at `offset`, as MaglevHashing.slot(flow, offset) computes it:
 * mh_hash(v + offset, MH_SEED1) % M, v the client's hash_fold(). mh_slot() is the probe at 0. */
static __always_inline __u32 mh_probe(__u32 v, __u32 offset)
{
	return fmix32((v + offset) ^ MH_SEED1) % MH_RING_SIZE;
}

/* Slot of a client address in client_hops: Fibonacci hashing (Knuth, TAOCP vol. 3 §6.4) spreads
 * addresses that differ only in their last octet over the whole table. */
static __always_inline __u32 client_hop_slot(__be32 addr)
{
	return ((__u32)addr * 0x9E3779B1u) >> (32 - CLIENT_HOP_BITS);
}

#endif /* LB_HASH_H */
