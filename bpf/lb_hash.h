/* lbxdp: the hashes of the datapath. The value sh and mh hash (lb.sched.hashing.fold), the bucket of
 * sh and dh (hash_32) and the Maglev slot of a client or of an mh-fallback probe (lb.sched.mh) are
 * each the twin of a Python function: tests/bpf/test_hash.py runs them in a program of their own
 * and compares them with Python. The client_hops slot of an address is the datapath's own. */
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

/* The Maglev slot of a client, as MaglevHashing.slot(flow, offset) computes it: mh_hash(v + offset,
 * MH_SEED1) % M on host-order values, v the client's hash_fold() (its port only with mh-port). The
 * client's own slot is offset 0; the mh-fallback walk probes the others. */
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
