/* lbxdp: the XDP entry point. Parse → flow lookup (else reverse, else service) → rewrite → verdict; every
 * verdict leaves through `out:`, which counts it under its reason (docs/datapath.md states the policy). */
#include <uapi/linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "lb_consts.h"
#include "lb_structs.h"
#include "lb_maps.h"
#include "lb_parse.h"
#include "lb_csum.h"
#include "lb_rewrite.h"

enum hop_kind {
	HOP_NONE,     /* no usable route: leave the packet alone */
	HOP_KERNEL,   /* routable, but not by XDP (neighbour unresolved, egress not in tx_ports) */
	HOP_TX,       /* out of the interface it came in on */
	HOP_REDIRECT, /* out of another interface, through tx_ports */
};

/* bcc rewrites map calls only in this file, so the step that consults tx_ports lives here. Asking
 * bpf_redirect_map() early both tests that the egress is in tx_ports (XDP_ABORTED, the fallback of
 * flags 0, if not) and sets the redirect target, so the verdict later is a constant XDP_REDIRECT.
 * `hop` holds the answer when rc is SUCCESS (route() in lb_rewrite.h). */
static __always_inline int next_hop(const struct next_hop *hop, __u32 ingress, int rc, __u32 *reason, int outbound)
{
	int port;

	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (hop->ifindex == ingress) {
			*reason = outbound ? REASON_TX_REVERSE : REASON_TX_FORWARD;
			return HOP_TX;
		}
		port = hop->ifindex;
		if (tx_ports.redirect_map(port, 0) == XDP_REDIRECT) {
			*reason = outbound ? REASON_REDIRECT_REVERSE : REASON_REDIRECT_FORWARD;
			return HOP_REDIRECT;
		}
		*reason = REASON_PASS_NOT_TX_PORT;
		return HOP_KERNEL;
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		*reason = REASON_PASS_NO_NEIGH;
		return HOP_KERNEL;
	}
	*reason = rc == BPF_FIB_LKUP_RET_FRAG_NEEDED ? REASON_PASS_FRAG_NEEDED : REASON_PASS_NO_ROUTE;
	return HOP_NONE;
}

/* Maglev in XDP: a first packet (TCP SYN without ACK, or UDP) of a service whose flags carry
 * SVC_F_HASH_IN_KERNEL is scheduled here from the ring Python filled (hash_rings, one row per such
 * service), so a new flow needs no round trip to user space. Returns 0 when the flow entry exists
 * now (created here, or by another CPU an instant ago): the caller continues as on a flow hit.
 * Otherwise it returns -1 with *reason: PASS_HASH_EMPTY for a 0 slot (the real is unavailable or
 * the slot is unclaimed: Python applies its own fallback rules), PASS_FLOW_MISS when XDP does not
 * schedule this service or cannot (a reverse entry for the 5-tuple already exists). */
static __always_inline int hash_schedule(struct flow_key *key, const struct service_info *svc, __u32 *reason)
{
	struct reverse_state rstate = {};
	struct flow_state fstate = {};
	struct flow_key rkey = {};
	struct real_info *real;
	struct hash_budget *budget;
	struct mh_ring *ring;
	__u32 row = svc->flags >> SVC_RING_SHIFT, slot, real_id, zero = 0;
	__u64 *conns, ns;

	*reason = REASON_PASS_FLOW_MISS;
	ring = hash_rings.lookup(&row);
	if (!ring) /* a row past MAX_HASHED_SERVICES: a flag set by hand, or a smaller map adopted */
		return -1;
	slot = mh_slot(key->saddr, (svc->flags & SVC_F_HASH_PORT) ? key->sport : 0);
	/* A remainder is below MH_RING_SIZE, which clang knows and the verifier does not: hide the
	 * value from clang so that the bound check the verifier needs is not optimised away. */
	asm volatile("" : "+r"(slot));
	if (slot >= MH_RING_SIZE)
		return -1;
	real_id = ring->real_ids[slot];
	real = reals.lookup(&real_id);
	if (!real_id || !real || real->forwarding == FWD_NONE) {
		*reason = REASON_PASS_HASH_EMPTY;
		return -1;
	}
	/* The flow table's room, as the daemon granted it at its last sweep: under a flood, new flows
	 * go up to the first-packet path, whose refusal policy protects established flows. */
	budget = hash_budget.lookup(&zero);
	if (!budget || budget->created >= budget->allowed) {
		*reason = REASON_PASS_HASH_BUDGET;
		return -1;
	}
	ns = bpf_ktime_get_ns();
	if (real->forwarding == FWD_MASQ) {
		/* The way back first, as DatapathMaps.install_flow() does: no reply may find the forward
		 * path open and the return path missing. insert() is BPF_NOEXIST: an existing entry
		 * (another flow of this client port to the same real, or a stale one) is not
		 * overwritten; Python decides then. */
		rkey.saddr = real->addr;
		rkey.daddr = key->saddr;
		rkey.sport = real->port;
		rkey.dport = key->sport;
		rkey.proto = key->proto;
		rstate.last_seen_ns = ns;
		rstate.vip = key->daddr;
		rstate.vport = key->dport;
		rstate.real_id = real_id;
		rstate.service_id = svc->service_id;
		rstate.seen_jiffies = (__u32)bpf_jiffies64();
		if (reverse.insert(&rkey, &rstate) != 0)
			return -1;
	}
	fstate.last_seen_ns = ns;
	fstate.real_id = real_id;
	fstate.service_id = svc->service_id;
	fstate.seen_jiffies = (__u32)bpf_jiffies64();
	/* insert() is BPF_NOEXIST: another CPU may have created this flow from a retransmitted SYN
	 * meanwhile; it names the same real (same ring), and only the creator counts the connection. */
	if (flows.insert(key, &fstate) == 0) {
		budget->created += 1;
		conns = hash_conns.lookup(&real_id);
		if (conns)
			*conns += 1;
	}
	return 0;
}

/* A closed connection's entries (the flow, and the way back of a masqueraded one), removed when a
 * SYN reuses its 5-tuple and XDP schedules the new connection itself: hash_schedule() creates
 * entries only where none exist. */
static __always_inline void forget_flow(struct flow_key *key, __u32 real_id)
{
	struct flow_key rkey = {};
	struct real_info *real = reals.lookup(&real_id);

	if (real && real->forwarding == FWD_MASQ) {
		rkey.saddr = real->addr;
		rkey.daddr = key->saddr;
		rkey.sport = real->port;
		rkey.dport = key->sport;
		rkey.proto = key->proto;
		reverse.delete(&rkey);
	}
	flows.delete(key);
}

int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = data };
	struct flow_key key = {};
	struct service_key skey = {};
	struct ethhdr *eth;
	struct iphdr *iph;
	struct tcphdr *tcp;
	struct udphdr *udp;
	struct flow_state *flow;
	struct reverse_state *rev;
	struct service_info *svc;
	struct real_info *real;
	struct lb_config *cfg;
	struct next_hop *hop;
	__be16 *sport, *dport;
	__sum16 *l4check;
	void *l4_end;
	__u32 reason, seen = 0, zero = 0, real_id = NO_ID, epoch = 0, ingress, slot;
	__u64 ip_bytes = 0, now; /* now: jiffies */
	int action = XDP_PASS, proto, rc, hop_kind, outbound = 0, opens = 0, first = 0;

	/* 1. parse: only plain Ethernet + option-less, unfragmented IPv4 + TCP/UDP is ours */
	if (parse_ethhdr(&nh, data_end, &eth) != bpf_htons(ETH_P_IP)) {
		reason = REASON_PASS_NOT_IPV4;
		goto out;
	}
	proto = parse_iphdr(&nh, data_end, &iph);
	if (proto < 0) {
		action = XDP_DROP;
		reason = REASON_DROP_BAD_IPV4;
		goto out;
	}
	if (iph->ihl != 5) {
		reason = REASON_PASS_IP_OPTIONS;
		goto out;
	}
	if (iph->frag_off & bpf_htons(LB_IP_MF | LB_IP_OFFSET)) {
		reason = REASON_PASS_FRAGMENT;
		goto out;
	}
	ip_bytes = bpf_ntohs(iph->tot_len);
	l4_end = (void *)iph + ip_bytes;
	if (proto == IPPROTO_TCP) {
		if (parse_tcphdr(&nh, data_end, l4_end, &tcp) < 0) {
			reason = REASON_PASS_BAD_L4;
			goto out;
		}
		sport = &tcp->source;
		dport = &tcp->dest;
		l4check = &tcp->check;
		seen = tcp_seen_bits(tcp);
		opens = tcp_opens(tcp);
		first = opens;
	} else if (proto == IPPROTO_UDP) {
		if (parse_udphdr(&nh, data_end, l4_end, &udp) < 0) {
			reason = REASON_PASS_BAD_L4;
			goto out;
		}
		sport = &udp->source;
		dport = &udp->dest;
		l4check = &udp->check;
		first = 1; /* any datagram may open a UDP flow */
	} else {
		reason = proto == IPPROTO_ICMP ? REASON_PASS_ICMP : REASON_PASS_OTHER_L4;
		goto out;
	}
	key.saddr = iph->saddr;
	key.daddr = iph->daddr;
	key.sport = *sport;
	key.dport = *dport;
	key.proto = proto;

	/* 2. flow lookup: a client → VIP packet of a scheduled flow goes straight to its real, with one
	 * lookup. Like IPVS (ip_vs_in() looks up the connection first and the service only to schedule),
	 * a flow outlives its service's entry until the sweeper ends it. */
	flow = flows.lookup(&key);
	if (flow) {
		/* A SYN on the 5-tuple of a connection that saw FIN or RST (its entry lingers for the
		 * tcpfin/close timeouts) is a client reusing its port: a new connection, scheduled afresh
		 * (IPVS's conn_reuse_mode=1 in ip_vs_in()) by the first-packet path, or here for a service
		 * XDP schedules itself (a busy client reuses ports within the tcpfin timeout, so most of
		 * its connections would go up otherwise). A SYN on a live flow is a retransmission and
		 * stays with its real. */
		if (opens && (flow->tcp_seen & (SEEN_FIN | SEEN_RST))) {
			reason = REASON_PASS_FLOW_REUSE;
			skey.vip = key.daddr;
			skey.port = key.dport;
			skey.proto = proto;
			svc = services.lookup(&skey);
			if (!svc || !(svc->flags & SVC_F_HASH_IN_KERNEL))
				goto out;
			forget_flow(&key, flow->real_id);
			goto schedule;
		}
		goto forward;
	}

	/* 3. reverse lookup: a masqueraded reply from a real goes back to its client */
	rev = reverse.lookup(&key);
	if (!rev) {
		/* 4. service lookup: a VIP's first packet goes up to the first-packet path (NFQUEUE),
		 * unless XDP schedules the service itself (Maglev, hash_schedule()). A TCP segment that
		 * opens no flow (no SYN, or SYN-ACK: the model's `opens`) is dropped here for a service
		 * whose scheduler cannot re-derive its real (SVC_F_DROP_MIDFLOW_MISS), as the daemon and
		 * IPVS would drop it: an ACK flood costs an XDP_DROP, not a trip through NFQUEUE. For
		 * the others (sh, dh, mh) it goes up, and Python re-derives the real. */
		skey.vip = key.daddr;
		skey.port = key.dport;
		skey.proto = proto;
		svc = services.lookup(&skey);
		if (!svc) {
			reason = REASON_PASS_NOT_VIP;
			goto out;
		}
		if (proto == IPPROTO_TCP && !opens && (svc->flags & SVC_F_DROP_MIDFLOW_MISS)) {
			action = XDP_DROP;
			reason = REASON_DROP_NO_FLOW_NOT_SYN;
			goto out;
		}
		reason = REASON_PASS_FLOW_MISS;
		if (!first || !(svc->flags & SVC_F_HASH_IN_KERNEL))
			goto out;
		goto schedule;
	}
	now = bpf_jiffies64();
	touch_flow(&rev->last_seen_ns, &rev->seen_jiffies, &rev->tcp_seen, seen, now);
	if (iph->ttl <= 1) {
		reason = REASON_PASS_TTL_EXCEEDED;
		goto out;
	}
	cfg = config.lookup(&zero);
	if (cfg)
		epoch = cfg->hop_epoch;
	slot = client_hop_slot(key.daddr);
	hop = client_hops.lookup(&slot);
	if (!hop) { /* cannot happen: the slot is below the array's size */
		reason = REASON_PASS_NO_ROUTE;
		goto out;
	}
	ingress = ctx->ingress_ifindex;
	rc = route(ctx, hop, ingress, epoch, now, proto, iph->tos, rev->vip, key.daddr, rev->vport, key.dport,
		   ip_bytes);
	hop_kind = next_hop(hop, ingress, rc, &reason, 1);
	if (hop_kind == HOP_NONE)
		goto out;
	nat_rewrite(iph, &iph->saddr, sport, l4check, proto == IPPROTO_UDP, rev->vip, rev->vport,
		    hop_kind != HOP_KERNEL);
	real_id = rev->real_id;
	outbound = 1;
	if (hop_kind == HOP_KERNEL)
		goto out;
	set_macs(eth, hop);
	goto transmit;

schedule: /* a first packet of a service XDP schedules itself (svc is its service) */
	if (hash_schedule(&key, svc, &reason) != 0)
		goto out;
	flow = flows.lookup(&key);
	if (!flow) { /* evicted already, or the update failed: the first-packet path decides */
		reason = REASON_PASS_FLOW_MISS;
		goto out;
	}
forward:
	now = bpf_jiffies64();
	touch_flow(&flow->last_seen_ns, &flow->seen_jiffies, &flow->tcp_seen, seen, now);
	real_id = flow->real_id;
	real = reals.lookup(&real_id);
	if (!real || real->forwarding == FWD_NONE) {
		real_id = NO_ID;
		reason = REASON_PASS_NO_REAL;
		goto out;
	}
	/* the real's slot in real_hops exists: real_id is below MAX_REALS, the size of both arrays */
	hop = real_hops.lookup(&real_id);
	cfg = config.lookup(&zero);
	if (!hop || !cfg) {
		real_id = NO_ID;
		reason = REASON_PASS_NO_ROUTE;
		goto out;
	}
	epoch = cfg->hop_epoch;
	ingress = ctx->ingress_ifindex;

	/* 5. rewrite by forwarding method */
	if (real->forwarding == FWD_MASQ) {
		if (iph->ttl <= 1) {
			real_id = NO_ID;
			reason = REASON_PASS_TTL_EXCEEDED;
			goto out;
		}
		rc = route(ctx, hop, ingress, epoch, now, proto, iph->tos, key.saddr, real->addr, key.sport,
			   real->port, ip_bytes);
		hop_kind = next_hop(hop, ingress, rc, &reason, 0);
		if (hop_kind == HOP_NONE) {
			real_id = NO_ID;
			goto out;
		}
		nat_rewrite(iph, &iph->daddr, dport, l4check, proto == IPPROTO_UDP, real->addr, real->port,
			    hop_kind != HOP_KERNEL);
		if (hop_kind != HOP_KERNEL)
			set_macs(eth, hop);
	} else if (real->forwarding == FWD_ROUTE) {
		rc = route(ctx, hop, ingress, epoch, now, proto, iph->tos, key.saddr, real->addr, key.sport,
			   key.dport, ip_bytes);
		hop_kind = next_hop(hop, ingress, rc, &reason, 0);
		if (hop_kind == HOP_NONE || hop_kind == HOP_KERNEL) {
			real_id = NO_ID; /* unmodified: the first-packet path forwards it and counts it */
			goto out;
		}
		set_macs(eth, hop);
	} else {
		if (!cfg->tunnel_saddr) {
			real_id = NO_ID;
			reason = REASON_PASS_NO_TUNNEL_SRC;
			goto out;
		}
		rc = route(ctx, hop, ingress, epoch, now, IPPROTO_IPIP, iph->tos, cfg->tunnel_saddr, real->addr, 0,
			   0, ip_bytes + sizeof(struct iphdr));
		hop_kind = next_hop(hop, ingress, rc, &reason, 0);
		if (hop_kind == HOP_NONE) {
			real_id = NO_ID;
			goto out;
		}
		rc = ipip_encap(ctx, cfg->tunnel_saddr, real->addr, hop_kind == HOP_KERNEL ? NULL : hop);
		if (rc) {
			real_id = NO_ID;
			action = rc == -1 ? XDP_PASS : XDP_ABORTED;
			reason = rc == -1 ? REASON_PASS_NO_HEADROOM : REASON_ABORTED_ENCAP;
			goto out;
		}
	}
	if (hop_kind == HOP_KERNEL)
		goto out;

transmit:
	/* 6. verdict */
	action = hop_kind == HOP_TX ? XDP_TX : XDP_REDIRECT;
out:
	{
		__u64 *n = reason_counts.lookup(&reason);

		if (n)
			*n += 1;
	}
	if (real_id != NO_ID)
		count_traffic(real_counts.lookup(&real_id), outbound, ip_bytes);
	return action;
}
