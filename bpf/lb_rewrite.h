/* lbxdp: the rewrites of each forwarding method (masquerading NAT, MAC rewrite, IPIP encapsulation) and
 * the next-hop lookup they share. lb/rewrite/ holds the same steps in Python, the tests' oracle. */
#ifndef LB_REWRITE_H
#define LB_REWRITE_H

/* bpf_fib_lookup() as the kernel's forwarding path would do it for the rewritten packet: from the
 * ingress interface (not BPF_FIB_LOOKUP_DIRECT, so policy routing applies), with tot_len so that a
 * packet too large for the egress MTU comes back as FRAG_NEEDED instead of being dropped by a driver. */
static __always_inline int fib_lookup_v4(struct xdp_md *ctx, struct bpf_fib_lookup *fib, __u8 proto,
					 __u8 tos, __be32 saddr, __be32 daddr, __be16 sport,
					 __be16 dport, __u32 tot_len)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = LB_AF_INET;
	fib->l4_protocol = proto;
	fib->tos = tos;
	fib->sport = sport;
	fib->dport = dport;
	fib->tot_len = tot_len; /* an XDP frame fits a page, so this never exceeds 16 bits */
	fib->ipv4_src = saddr;
	fib->ipv4_dst = daddr;
	fib->ifindex = ctx->ingress_ifindex;
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

/* Is the cached answer in `hop` the one bpf_fib_lookup() would give now (`now` in jiffies, as in all
 * of the next-hop cache), as far as we can tell without asking? Same destination and ingress, not expired, not flushed, and the packet no longer than one
 * the lookup let through (a longer one must meet the MTU check again). */
static __always_inline int hop_fresh(const struct next_hop *hop, __be32 daddr, __u32 ingress,
				     __u32 epoch, __u32 tot_len, __u64 now)
{
	return hop->expires > now && hop->daddr == daddr && hop->ingress == ingress &&
	       hop->epoch == epoch && tot_len <= hop->max_len;
}

/* Cache a successful lookup. It is asked only when the slot was not fresh for this packet, so either
 * the slot held something else or this packet is longer than any approved so far: in both cases its
 * length is the new bound. */
static __always_inline void remember_hop(struct next_hop *hop, const struct bpf_fib_lookup *fib,
					 __be32 daddr, __u32 ingress, __u32 epoch, __u32 tot_len,
					 __u64 now)
{
	hop->expires = now + NEXT_HOP_TTL_TICKS;
	hop->daddr = daddr;
	hop->ingress = ingress;
	hop->epoch = epoch;
	hop->max_len = tot_len;
	hop->ifindex = fib->ifindex;
	__builtin_memcpy(hop->smac, fib->smac, ETH_ALEN);
	__builtin_memcpy(hop->dmac, fib->dmac, ETH_ALEN);
}

/* The next hop to daddr for this packet: the cached answer while hop_fresh(), else bpf_fib_lookup(),
 * whose success replaces the slot's. Returns BPF_FIB_LKUP_RET_*; on SUCCESS `hop` holds the answer. */
static __always_inline int route(struct xdp_md *ctx, struct next_hop *hop, __u32 ingress,
				 __u32 epoch, __u64 now, __u8 proto, __u8 tos, __be32 saddr,
				 __be32 daddr, __be16 sport, __be16 dport, __u32 tot_len)
{
	struct bpf_fib_lookup fib;
	int rc;

	if (hop_fresh(hop, daddr, ingress, epoch, tot_len, now))
		return BPF_FIB_LKUP_RET_SUCCESS;
	rc = fib_lookup_v4(ctx, &fib, proto, tos, saddr, daddr, sport, dport, tot_len);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		remember_hop(hop, &fib, daddr, ingress, epoch, tot_len, now);
	return rc;
}

static __always_inline void set_macs(struct ethhdr *eth, const struct next_hop *hop)
{
	__builtin_memcpy(eth->h_dest, hop->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, hop->smac, ETH_ALEN);
}

/* The transport half of nat_rewrite(): the L4 checksum after one address and its port changed.
 * UDP: a zero checksum means "none" and stays zero; a computed zero is sent as 0xffff (RFC 768).
 * The name is parenthesized in the definition so that a test build can replace every call with a
 * function-like macro of that name (tests/bpf/lb_break_csum.h leaves the checksum stale). */
static __always_inline void(nat_l4_csum)(__sum16 *l4check, int is_udp, __be32 old_addr,
					 __be32 new_addr, __be16 old_port, __be16 new_port)
{
	__u16 check;

	if (is_udp && !*l4check)
		return;
	check = csum_replace_4_2(*l4check, old_addr, new_addr, old_port, new_port);
	if (is_udp && !check)
		check = 0xffff;
	*l4check = check;
}

/* Masquerading: replace one address and its port (the destination on the way in, the source on the
 * way out) and fix both checksums incrementally. The TTL drops by one only when XDP forwards the
 * packet itself; a packet handed to the kernel gets its decrement there (one hop, one decrement). */
static __always_inline void nat_rewrite(struct iphdr *iph, __be32 *addr, __be16 *port,
					__sum16 *l4check, int is_udp, __be32 new_addr,
					__be16 new_port, int dec_ttl)
{
	__be32 old_addr = *addr;
	__be16 old_port = *port;
	__u16 old_ttl_word = *(__u16 *)&iph->ttl; /* TTL and protocol share one checksum word */

	iph->ttl -= dec_ttl;
	*addr = new_addr;
	*port = new_port;
	iph->check =
		csum_replace_4_2(iph->check, old_addr, new_addr, old_ttl_word, *(__u16 *)&iph->ttl);
	nat_l4_csum(l4check, is_udp, old_addr, new_addr, old_port, new_port);
}

/* IPIP (RFC 2003): grow the head by an outer IPv4 header to the real. TOS and DF are copied from the
 * inner header (RFC 2003 §3.1), the id is 0, the TTL IPIP_TTL. The Ethernet header moves to the front;
 * its MACs come from `hop`, or stay as they were (addressed to us) when hop is NULL, for the kernel to
 * route. Returns 0; -1 when the head could not grow (packet unchanged); -2 if, after growing, the
 * headers do not fit (impossible, but the verifier wants the check and the packet is no longer whole). */
static __always_inline int ipip_encap(struct xdp_md *ctx, __be32 saddr, __be32 daddr,
				      const struct next_hop *hop)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *inner = data + sizeof(*eth);
	struct ethhdr l2;
	struct iphdr outer = {};

	if ((void *)(inner + 1) > data_end)
		return -1;
	l2 = *eth;
	outer.version = 4;
	outer.ihl = 5;
	outer.tos = inner->tos;
	outer.tot_len = bpf_htons(bpf_ntohs(inner->tot_len) + sizeof(outer));
	outer.frag_off = inner->frag_off & bpf_htons(LB_IP_DF);
	outer.ttl = IPIP_TTL;
	outer.protocol = IPPROTO_IPIP;
	outer.saddr = saddr;
	outer.daddr = daddr;
	outer.check = ipv4_header_csum(&outer);

	if (bpf_xdp_adjust_head(ctx, 0 - (int)sizeof(struct iphdr)))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)eth + sizeof(*eth) + sizeof(outer) > data_end)
		return -2;
	if (hop)
		set_macs(&l2, hop);
	*eth = l2;
	__builtin_memcpy((void *)eth + sizeof(*eth), &outer, sizeof(outer));
	return 0;
}

#endif /* LB_REWRITE_H */
