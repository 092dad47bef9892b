/* lbxdp: Internet checksum helpers. Incremental updates follow RFC 1624 eqn 3, HC' = ~(~HC + ~m + m'),
 * on the raw (network-order) 16-bit words; lb/rewrite/checksum.py performs the same steps in Python. */
#ifndef LB_CSUM_H
#define LB_CSUM_H

/* End-around carry: enough folds for sums of up to 2^16 words. */
static __always_inline __u16 lb_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* One RFC 1624 update for a 32-bit field (an address) and a 16-bit field (a port, or the TTL/protocol
 * word) changing together: one fold instead of two keeps the hot path short. */
static __always_inline __u16 csum_replace_4_2(__u16 check, __u32 from32, __u32 to32, __u16 from16,
					      __u16 to16)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~from32 + (__u16)(~from32 >> 16);
	sum += (to32 & 0xffff) + (to32 >> 16);
	sum += (__u16)~from16 + to16;
	return (__u16)~lb_csum_fold(sum);
}

/* Checksum of an option-less IPv4 header whose check field is zero (RFC 791), unrolled. */
static __always_inline __u16 ipv4_header_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7] + w[8] + w[9];

	return (__u16)~lb_csum_fold(sum);
}

#endif /* LB_CSUM_H */
