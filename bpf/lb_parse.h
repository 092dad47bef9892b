/* lbxdp: header parsers in xdp-tutorial's shape: a cursor, data_end, an out-pointer; each returns the
 * next protocol (or the header length) and -1 when the header is truncated or lies about its length. */
#ifndef LB_PARSE_H
#define LB_PARSE_H

struct hdr_cursor {
	void *pos;
};

/* Returns the EtherType in network byte order; a VLAN tag is returned as such (the caller passes it). */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end, struct ethhdr **ethhdr)
{
	struct ethhdr *eth = nh->pos;

	if ((void *)(eth + 1) > data_end)
		return -1;
	nh->pos = eth + 1;
	*ethhdr = eth;
	return eth->h_proto;
}

/* A version other than 4 and the four ways an IPv4 header can lie (ihl < 5, tot_len < ihl*4, ihl*4 or
 * tot_len past the frame) all return -1: ip_rcv_core() in net/ipv4/ip_input.c drops each of them. Padding after tot_len is
 * allowed: Ethernet pads short frames to 60 bytes. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end, struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	__u32 hdrsize, tot_len;

	if ((void *)(iph + 1) > data_end)
		return -1;
	hdrsize = iph->ihl * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (iph->version != 4 || hdrsize < sizeof(*iph) || tot_len < hdrsize)
		return -1;
	if (nh->pos + hdrsize > data_end || nh->pos + tot_len > data_end)
		return -1;
	nh->pos += hdrsize;
	*iphdr = iph;
	return iph->protocol;
}

/* l4_end is where the IPv4 packet ends (ip + tot_len): the TCP header must fit before it, not just
 * before data_end, or padding would be read as header. Returns the header length. */
static __always_inline int parse_tcphdr(struct hdr_cursor *nh, void *data_end, void *l4_end,
					struct tcphdr **tcphdr)
{
	struct tcphdr *tcp = nh->pos;
	int len;

	if ((void *)(tcp + 1) > data_end || (void *)(tcp + 1) > l4_end)
		return -1;
	len = tcp->doff * 4;
	if (len < (int)sizeof(*tcp) || nh->pos + len > l4_end)
		return -1;
	nh->pos += len;
	*tcphdr = tcp;
	return len;
}

static __always_inline int parse_udphdr(struct hdr_cursor *nh, void *data_end, void *l4_end,
					struct udphdr **udphdr)
{
	struct udphdr *udp = nh->pos;

	if ((void *)(udp + 1) > data_end || (void *)(udp + 1) > l4_end)
		return -1;
	nh->pos = udp + 1;
	*udphdr = udp;
	return sizeof(*udp);
}

/* What a segment tells the flow sweeper: enum lb_tcp_seen bits. */
static __always_inline __u32 tcp_seen_bits(const struct tcphdr *tcp)
{
	return (tcp->ack && !tcp->syn ? SEEN_ESTABLISHED : 0) | (tcp->fin ? SEEN_FIN : 0) |
	       (tcp->rst ? SEEN_RST : 0);
}

/* A connection attempt: SYN without ACK (a SYN-ACK answers one, it never opens one). */
static __always_inline int tcp_opens(const struct tcphdr *tcp)
{
	return tcp->syn && !tcp->ack;
}

#endif /* LB_PARSE_H */
