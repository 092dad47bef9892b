/* lbxdp: header parsers in xdp-tutorial's shape (a cursor, data_end, an out-pointer; the next protocol
 * or header length, -1 for a truncated or lying header), and parse_packet(), the first step of xdp_lb. */
#ifndef LB_PARSE_H
#define LB_PARSE_H

struct hdr_cursor {
	void *pos;
};

/* Returns the EtherType in network byte order; a VLAN tag is returned as such (the caller passes it). */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					struct ethhdr **ethhdr)
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

/* A packet the datapath may handle, parsed: where its headers and rewritable fields are, and what
 * its flow key and TCP flags say. */
struct packet {
	struct ethhdr *eth;
	struct iphdr *iph;
	__be16 *sport;
	__be16 *dport;
	__sum16 *l4check;
	struct flow_key key;
	__u64 ip_bytes; /* IPv4 tot_len: what the traffic counters count */
	__u32 seen;	/* enum lb_tcp_seen bits of this segment (0 for UDP) */
	int opens;	/* a TCP connection attempt: tcp_opens() */
	int first;	/* may open a flow: a TCP connection attempt, or any UDP datagram */
};

/* The verdict in the making: what xdp_lb() returns, the reason it is counted under, and how a
 * rewritten packet leaves (enum hop_kind in lb_kern.c; HOP_NONE while it is not rewritten). */
struct verdict {
	int action;
	__u32 reason;
	int hop;
};

/* Step 1 of xdp_lb(): only plain Ethernet + option-less, unfragmented IPv4 + TCP/UDP is ours. Returns
 * 0 with `pkt` filled, or -1 with the verdict (a PASS, or a DROP of a lying IPv4 header) in `v`. */
static __always_inline int parse_packet(void *data, void *data_end, struct packet *pkt,
					struct verdict *v)
{
	struct hdr_cursor nh = { .pos = data };
	struct tcphdr *tcp;
	struct udphdr *udp;
	void *l4_end;
	int proto;

	if (parse_ethhdr(&nh, data_end, &pkt->eth) != bpf_htons(ETH_P_IP)) {
		v->reason = REASON_PASS_NOT_IPV4;
		return -1;
	}
	proto = parse_iphdr(&nh, data_end, &pkt->iph);
	if (proto < 0) {
		v->action = XDP_DROP;
		v->reason = REASON_DROP_BAD_IPV4;
		return -1;
	}
	if (pkt->iph->ihl != 5) {
		v->reason = REASON_PASS_IP_OPTIONS;
		return -1;
	}
	if (pkt->iph->frag_off & bpf_htons(LB_IP_MF | LB_IP_OFFSET)) {
		v->reason = REASON_PASS_FRAGMENT;
		return -1;
	}
	pkt->ip_bytes = bpf_ntohs(pkt->iph->tot_len);
	l4_end = (void *)pkt->iph + pkt->ip_bytes;
	if (proto == IPPROTO_TCP) {
		if (parse_tcphdr(&nh, data_end, l4_end, &tcp) < 0) {
			v->reason = REASON_PASS_BAD_L4;
			return -1;
		}
		pkt->sport = &tcp->source;
		pkt->dport = &tcp->dest;
		pkt->l4check = &tcp->check;
		pkt->seen = tcp_seen_bits(tcp);
		pkt->opens = tcp_opens(tcp);
		pkt->first = pkt->opens;
	} else if (proto == IPPROTO_UDP) {
		if (parse_udphdr(&nh, data_end, l4_end, &udp) < 0) {
			v->reason = REASON_PASS_BAD_L4;
			return -1;
		}
		pkt->sport = &udp->source;
		pkt->dport = &udp->dest;
		pkt->l4check = &udp->check;
		pkt->first = 1; /* any datagram may open a UDP flow */
	} else {
		v->reason = proto == IPPROTO_ICMP ? REASON_PASS_ICMP : REASON_PASS_OTHER_L4;
		return -1;
	}
	pkt->key.saddr = pkt->iph->saddr;
	pkt->key.daddr = pkt->iph->daddr;
	pkt->key.sport = *pkt->sport;
	pkt->key.dport = *pkt->dport;
	pkt->key.proto = proto;
	return 0;
}

#endif /* LB_PARSE_H */
