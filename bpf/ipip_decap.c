/* ipip_decap.c — a tiny XDP IPIP (IPv4-in-IPv4, RFC 2003) decapsulator for test real servers.
 * This kernel has no ipip module, so a real server behind an lbxdp `-i` service runs this on its interface. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>

#ifndef MAX_LOCAL_ADDRS
#define MAX_LOCAL_ADDRS 1024
#endif

/* local_addrs: the tunnel exit addresses (real servers' own addresses, network byte order) whose
 * packets are opened; RFC 2003 §3.1: the outer destination is the tunnel exit point. One compiled
 * object serves every real, so the loader adds each real's address here. */
BPF_HASH(local_addrs, __u32, __u8, MAX_LOCAL_ADDRS);

/* Counters the loader and tests read: how many packets were decapsulated and how many were
 * IPIP but left alone (wrong destination, options, fragments). */
BPF_ARRAY(decap_stats, __u64, 2);
#define STAT_DECAPPED 0
#define STAT_SKIPPED 1

static __always_inline void count(__u32 slot)
{
	__u64 *value = decap_stats.lookup(&slot);

	if (value)
		__sync_fetch_and_add(value, 1);
}

int xdp_ipip_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr saved;
	struct iphdr *outer;
	__u32 daddr;

	if ((void *)(eth + 1) > data_end)
		goto out;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		goto out;
	outer = (void *)(eth + 1);
	if ((void *)(outer + 1) > data_end)
		goto out;
	if (outer->protocol != IPPROTO_IPIP)
		goto out;
	daddr = outer->daddr;
	/* An outer header with options or a fragmented tunnel packet is not what lbxdp emits:
     * leave it to the kernel (which drops it, having no ipip module) and count it. */
	if (outer->ihl != 5 || (outer->frag_off & bpf_htons(0x3fff)) != 0 ||
	    !local_addrs.lookup(&daddr)) {
		count(STAT_SKIPPED);
		goto out;
	}
	/* The inner IPv4 header must be present before the outer one is dropped. */
	if ((void *)(outer + 1) + sizeof(struct iphdr) > data_end) {
		count(STAT_SKIPPED);
		goto out;
	}

	/* Keep the Ethernet header, then move the packet start past the outer IP header and
     * write the Ethernet header back in front of the inner one. */
	__builtin_memcpy(&saved, eth, sizeof(saved));
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
		goto out;
	/* adjust_head invalidates every packet pointer: re-read and re-check. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		goto out;
	__builtin_memcpy(eth, &saved, sizeof(saved));
	count(STAT_DECAPPED);
out:
	return XDP_PASS;
}

/* A program that passes everything: attached to a veth's peer so that native XDP_TX and
 * XDP_REDIRECT into that veth are delivered (veth only accepts XDP frames when its peer runs
 * NAPI, which an attached XDP program or GRO turns on). */
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
