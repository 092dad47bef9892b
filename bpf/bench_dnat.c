/* Bench baseline: the minimal XDP forwarder lbxdp is held against. One LRU lookup on the 5-tuple,
 * DNAT with RFC 1624 incremental checksums, MACs taken from the entry (no fib lookup), then
 * XDP_TX or XDP_REDIRECT; a miss is XDP_PASS. No services, no reverse path, no per-real stats. */
#include <uapi/linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/tcp.h>

#ifndef MAX_FLOWS
#define MAX_FLOWS 65536
#endif

/* the 5-tuple exactly as it appears in the packet (network byte order): the layout of lbxdp's
 * struct flow_key (same hashing cost), kept here so the baseline never depends on lbxdp's headers */
struct dnat_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* where the packet goes: new destination, and the Ethernet hop to it */
struct dnat_target {
	__be32 daddr;
	__be16 dport;
	__u16 pad;
	__u32 ifindex; /* egress; equal to the ingress means XDP_TX */
	__u8 smac[6];
	__u8 dmac[6];
};

/* 5-tuple → target */
BPF_TABLE("lru_hash", struct dnat_key, struct dnat_target, dnat_flows, MAX_FLOWS);
/* XDP verdict → packets */
BPF_TABLE("percpu_array", __u32, __u64, verdicts, 8);

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 32-bit field, folded. */
static __always_inline __u16 dnat_csum4(__u16 check, __u32 from, __u32 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16) ~(from >> 16) + (__u16) ~(from & 0xffff);
	sum += (to >> 16) + (to & 0xffff);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 dnat_csum2(__u16 check, __u16 from, __u16 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~from + to;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

int xdp_bench_dnat(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	struct dnat_key key = {};
	struct dnat_target *t;
	__be16 *dport;
	__sum16 *l4check;
	int udp = 0;
	__u32 verdict = XDP_PASS;
	__u64 *n;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		goto out;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end || iph->ihl != 5)
		goto out;
	if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(iph + 1);

		if ((void *)(uh + 1) > data_end)
			goto out;
		key.sport = uh->source;
		dport = &uh->dest;
		l4check = &uh->check;
		udp = 1;
	} else if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(iph + 1);

		if ((void *)(th + 1) > data_end)
			goto out;
		key.sport = th->source;
		dport = &th->dest;
		l4check = &th->check;
	} else {
		goto out;
	}
	key.saddr = iph->saddr;
	key.daddr = iph->daddr;
	key.dport = *dport;
	key.proto = iph->protocol;

	t = dnat_flows.lookup(&key);
	if (!t)
		goto out;

	/* the pseudo-header holds daddr, so the L4 checksum changes with it (a UDP 0 stays 0) */
	if (!udp || *l4check) {
		__u16 c = dnat_csum4(*l4check, iph->daddr, t->daddr);

		c = dnat_csum2(c, *dport, t->dport);
		*l4check = (udp && !c) ? 0xffff : c;
	}
	iph->check = dnat_csum4(iph->check, iph->daddr, t->daddr);
	iph->daddr = t->daddr;
	*dport = t->dport;
	__builtin_memcpy(eth->h_source, t->smac, 6);
	__builtin_memcpy(eth->h_dest, t->dmac, 6);
	if (t->ifindex == ctx->ingress_ifindex) {
		verdict = XDP_TX;
	} else {
		verdict = XDP_REDIRECT;
		n = verdicts.lookup(&verdict);
		if (n)
			*n += 1;
		return bpf_redirect(t->ifindex, 0);
	}
out:
	n = verdicts.lookup(&verdict);
	if (n)
		*n += 1;
	return verdict;
}
