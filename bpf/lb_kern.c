/* lbxdp: the XDP entry point and its steps: parse → flow lookup (else reverse, else service → schedule)
 * → rewrite → verdict; every verdict leaves through `out:`, counted under its reason (docs/datapath.md). */
#include <uapi/linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "lb_consts.h"
#include "lb_structs.h"
#include "lb_maps.h"
#include "lb_hash.h"
#include "lb_flow.h"
#include "lb_parse.h"
#include "lb_csum.h"
#include "lb_rewrite.h"

/* What steps 2 to 4 decided: go on with the flow found, schedule the packet's flow, or stop. */
enum step_kind {
	STEP_KEEP,
	STEP_SCHEDULE,
	STEP_OUT, /* the verdict and its reason are set */
};

enum hop_kind {
	HOP_NONE,     /* no usable route: leave the packet alone */
	HOP_KERNEL,   /* routable, but not by XDP (neighbour unresolved, egress not in tx_ports) */
	HOP_TX,	      /* out of the interface it came in on */
	HOP_REDIRECT, /* out of another interface, through tx_ports */
};

/* bcc rewrites map calls only in this file, so the step that consults tx_ports lives here. Asking
 * bpf_redirect_map() early both tests that the egress is in tx_ports (XDP_ABORTED, the fallback of
 * flags 0, if not) and sets the redirect target, so the verdict later is a constant XDP_REDIRECT.
 * `hop` holds the answer when rc is SUCCESS (route() in lb_rewrite.h). */
static __always_inline int next_hop(const struct next_hop *hop, __u32 ingress, int rc,
				    __u32 *reason, int outbound)
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
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		*reason = REASON_PASS_FRAG_NEEDED;
	else
		*reason = REASON_PASS_NO_ROUTE;
	return HOP_NONE;
}

/* Persistence (ipvsadm -p): the real a live template of the client's network names, when that real
 * may take a new flow; 0 otherwise (the scheduler decides, and record_template() rewrites it).
 * ip_vs_sched_persist() with ip_vs_check_template(); lb.balancer.engine Balancer.place() is the same
 * rule in Python, over the same map. Alive while now <= expires_ns (persistence.Template.alive). */
static __always_inline __u32 template_real(const struct flow_key *key,
					   const struct service_info *svc, __u64 now)
{
	struct template_key tkey = {};
	struct persist_template *tpl;
	struct real_sched *rs;
	__u32 real_id;

	tkey.service_id = svc->service_id;
	tkey.client_net = key->saddr & svc->persist_mask;
	tpl = templates.lookup(&tkey);
	if (!tpl || now > tpl->expires_ns)
		return 0;
	real_id = tpl->real_id;
	/* never to a real that cannot take flows now (weight 0, down, over its threshold) */
	rs = real_sched.lookup(&real_id);
	if (!rs || !(rs->flags & REAL_F_AVAILABLE))
		return 0;
	return real_id;
}

/* Persistence: a flow of a persistent service was created for `real_id`: the template points there
 * and its timer restarts (IPVS restarts it on every connection that uses it). An LRU insert: with
 * MAX_TEMPLATES live client networks the least recently used template is evicted. */
static __always_inline void record_template(const struct flow_key *key,
					    const struct service_info *svc, __u32 real_id,
					    __u64 now)
{
	struct template_key tkey = {};
	struct persist_template tpl = {};

	tkey.service_id = svc->service_id;
	tkey.client_net = key->saddr & svc->persist_mask;
	tpl.expires_ns = now + (__u64)svc->persist_timeout * 1000000000ULL; /* s to ns */
	tpl.real_id = real_id;
	templates.update(&tkey, &tpl);
}

/* lc, wlc, sed, nq, fo, ovf (ip_vs_lc.c … ip_vs_ovf.c): one walk over the service's reals in the
 * daemon's order (sched_dests[row], at most WALK_MAX), each with its weight and availability
 * (real_sched) and its connections (real_conns; a count a racing decrement left negative reads as
 * 0). Every kind is the kernel's "a real replaces the choice when loh * dw > doh * lw" with its
 * own overhead and weight: lc weighs every real 1 (so: a strictly smaller overhead), fo and ovf
 * cost every real 1 (so: a strictly higher weight), nq takes the first idle real at once, ovf
 * passes over a real with more active connections than its weight. Ties keep the earlier real.
 * Products in 64 bits, as the kernel's (__s64) casts: overheads stay below 2^40 and weights at
 * most 65535 (MAX_WEIGHT), so none overflows. 0 when no real is available: the daemon decides
 * (and drops, as IPVS does). */
static __always_inline __u32 pick_least(const struct service_info *svc)
{
	struct sched_dests *walk;
	struct real_sched *rs;
	struct real_conns *rc;
	__u32 row = svc->row, count, i, id, best = 0;
	__s64 loh = 0, lw = 0, doh, dw, active, inactive;

	walk = sched_dests.lookup(&row);
	if (!walk)
		return 0;
	count = walk->count;
	for (i = 0; i < WALK_MAX; i++) {
		if (i >= count)
			break;
		id = walk->real_ids[i];
		rs = real_sched.lookup(&id);
		/* a weight of 0 is never available; asked anyway, since lw = 0 would let any real win */
		if (!rs || !(rs->flags & REAL_F_AVAILABLE) || !rs->weight)
			continue;
		rc = real_conns.lookup(&id);
		active = rc && rc->active > 0 ? rc->active : 0;
		inactive = rc && rc->inactive > 0 ? rc->inactive : 0;
		dw = rs->weight;
		switch (svc->sched) {
		case SCHED_LC: /* ip_vs_dest_conn_overhead(), every real weighing 1 */
			doh = (active << 8) + inactive;
			dw = 1;
			break;
		case SCHED_WLC:
			doh = (active << 8) + inactive;
			break;
		case SCHED_NQ:
			if (!active)
				return id;
			doh = active + 1;
			break;
		case SCHED_SED:
			doh = active + 1;
			break;
		case SCHED_OVF:
			if (active > dw)
				continue;
			doh = 1;
			break;
		default: /* SCHED_FO */
			doh = 1;
		}
		if (!best || loh * dw > doh * lw) {
			best = id;
			loh = doh;
			lw = dw;
		}
	}
	return best;
}

/* A real a scheduler in XDP may give a new flow: REAL_F_AVAILABLE in real_sched, which the daemon
 * writes from the real's Destination.available (weight > 0, healthy, not overloaded). */
static __always_inline int hash_real_available(__u32 real_id)
{
	struct real_sched *rs = real_sched.lookup(&real_id);

	return rs && (rs->flags & REAL_F_AVAILABLE);
}

/* sh, dh: the real of a flow's bucket in bucket_tables[row], as lb.sched.sh.BucketScheduler picks it:
 * bucket hash_32(fold(saddr, sport under sh-port)) for sh, hash_32(daddr) for dh. An unavailable
 * real gives 0 (the daemon decides, and drops: "no destination available") unless SVC_F_FALLBACK
 * (sh-fallback): then the kernel's walk (ip_vs_sh_get_fallback()) tries bucket
 * ((ihash + i) % 256 + ihash) % 256 for i = 0 … 255. That visits every bucket once, so XDP walks it
 * whole and leaves the daemon nothing it could decide. A 0 bucket (no reals) gives 0. */
static __always_inline __u32 pick_bucket(const struct flow_key *key, const struct service_info *svc)
{
	struct bucket_table *table;
	__u32 row = svc->row, v, ihash, bucket, real_id, i;

	table = bucket_tables.lookup(&row);
	if (!table)
		return 0;
	if (svc->sched == SCHED_DH)
		v = hash_fold(key->daddr, 0);
	else
		v = hash_fold(key->saddr, (svc->flags & SVC_F_HASH_PORT) ? key->sport : 0);
	ihash = lb_hash_32(v, BUCKET_BITS) & (BUCKETS - 1);
	real_id = table->real_ids[ihash];
	if (!real_id || hash_real_available(real_id))
		return real_id;
	if (!(svc->flags & SVC_F_FALLBACK))
		return 0;
	for (i = 0; i < BUCKETS; i++) {
		bucket = (((ihash + i) & (BUCKETS - 1)) + ihash) & (BUCKETS - 1);
		real_id = table->real_ids[bucket];
		if (!real_id)
			return 0;
		if (hash_real_available(real_id))
			return real_id;
	}
	return 0;
}

/* Connection counting, as IPVS's set_tcp_state() moves a connection between its real's activeconns
 * and inactconns: a flow is active while its TCP bits say ESTABLISHED without FIN or RST
 * (flow_active(), the phase lb.balancer.lifetime gives the same bits). Only the client's
 * segments are seen here; the daemon's sweep rewrites real_conns from the whole flow table
 * (docs/schedulers.md). */
static __always_inline void count_transition(__u32 real_id, __u32 before, __u32 after)
{
	struct real_conns *conns;
	int was = flow_active(before), is = flow_active(after);

	if (was == is)
		return;
	conns = real_conns.lookup(&real_id);
	if (!conns)
		return;
	__sync_fetch_and_add(&conns->active, is ? 1 : -1);
	__sync_fetch_and_add(&conns->inactive, is ? -1 : 1);
}

/* A flow forgotten here (a SYN reusing a closed connection's 5-tuple) leaves its real's counts. */
static __always_inline void count_gone(__u32 real_id, __u32 seen)
{
	struct real_conns *conns = real_conns.lookup(&real_id);

	if (!conns)
		return;
	if (flow_active(seen))
		__sync_fetch_and_add(&conns->active, -1);
	else
		__sync_fetch_and_add(&conns->inactive, -1);
}

/* mh: the real of the client's slot in the Maglev ring hash_rings[row] (0: the daemon decides).
 * Without mh-fallback the daemon writes 0 for an unavailable real's slots. With it (SVC_F_FALLBACK)
 * the ring names every slot's real and an unavailable one is walked past as MaglevHashing does
 * (ip_vs_mh_get_fallback()): probe i is slot mh_probe(v, (slot + i) % M). That walk may be M long,
 * so XDP makes at most MH_FALLBACK_PROBES probes and then leaves the flow to the daemon, whose walk
 * goes on: the real is Python's either way. */
static __always_inline __u32 pick_mh(const struct flow_key *key, const struct service_info *svc)
{
	struct mh_ring *ring;
	__u32 row = svc->row, slot, v, probe, real_id, i;

	ring = hash_rings.lookup(&row);
	/* a row past MAX_HASHED_SERVICES: a service entry written by hand, or a smaller map adopted */
	if (!ring)
		return 0;
	v = hash_fold(key->saddr, (svc->flags & SVC_F_HASH_PORT) ? key->sport : 0);
	slot = mh_probe(v, 0);
	/* A remainder is below MH_RING_SIZE, which clang knows and the verifier does not: hide the
	 * value from clang so that the bound check the verifier needs is not optimised away. */
	asm volatile("" : "+r"(slot));
	if (slot >= MH_RING_SIZE)
		return 0;
	real_id = ring->real_ids[slot];
	if (!real_id || !(svc->flags & SVC_F_FALLBACK) || hash_real_available(real_id))
		return real_id;
	for (i = 0; i < MH_FALLBACK_PROBES; i++) {
		probe = mh_probe(v, (slot + i) % MH_RING_SIZE);
		asm volatile("" : "+r"(probe));
		if (probe >= MH_RING_SIZE)
			return 0;
		real_id = ring->real_ids[probe];
		if (!real_id)
			return 0;
		if (hash_real_available(real_id))
			return real_id;
	}
	return 0;
}

/* rr, wrr: the next position of the service's cycle. The cursor is one counter for all CPUs, taken
 * with an atomic fetch-and-add, so consecutive new flows get consecutive positions whichever CPU
 * they arrive on: the order is the Python scheduler's exactly (lb.sched.rr, lb.sched.wrr). */
static __always_inline __u32 pick_seq(const struct service_info *svc)
{
	struct sched_seq *seq;
	__u64 *cursor;
	__u32 row = svc->row, len, pos;

	seq = sched_seqs.lookup(&row);
	cursor = sched_cursors.lookup(&row);
	if (!seq || !cursor)
		return 0;
	len = seq->len;
	if (!len || len > SEQ_MAX)
		return 0;
	pos = __sync_fetch_and_add(cursor, 1) % len;
	asm volatile("" : "+r"(pos)); /* as in pick_mh(): keep the bound check for the verifier */
	if (pos >= SEQ_MAX)
		return 0;
	return seq->real_ids[pos];
}

/* The real a first packet goes to, by the service's scheduler kind; 0 when XDP does not decide it
 * (a 0 in the scheduler's map, an unknown kind): the daemon decides then. */
static __always_inline __u32 pick_real(const struct flow_key *key, const struct service_info *svc)
{
	switch (svc->sched) {
	case SCHED_MH:
		return pick_mh(key, svc);
	case SCHED_SEQ:
		return pick_seq(svc);
	case SCHED_SH:
	case SCHED_DH:
		return pick_bucket(key, svc);
	case SCHED_LC:
	case SCHED_WLC:
	case SCHED_SED:
	case SCHED_NQ:
	case SCHED_FO:
	case SCHED_OVF:
		return pick_least(svc);
	}
	return 0;
}

/* Step 4 for a first packet (TCP SYN without ACK, or UDP) of a service XDP decides itself
 * (service_info.sched, written by lb.daemon.kernelsched): pick the real from the state the daemon
 * keeps in maps and create the flow, so a new flow needs no round trip to user space. Returns 0
 * when the flow entry exists now (created here, or by another CPU an instant ago): the caller
 * continues as on a flow hit. Otherwise -1 with *reason: PASS_HASH_BUDGET when the flow table's
 * room is used up, PASS_HASH_EMPTY when the scheduler's map names no real (the daemon applies its
 * own rules, and drops when no real is available), PASS_FLOW_MISS when XDP cannot create the flow
 * (a reverse entry for the 5-tuple already exists). */
static __always_inline int schedule_new(struct flow_key *key, const struct service_info *svc,
					__u32 *reason)
{
	struct reverse_state rstate = {};
	struct flow_state fstate = {};
	struct flow_key rkey = {};
	struct real_info *real;
	struct hash_budget *budget;
	struct real_conns *conns;
	__u32 real_id = 0, zero = 0;
	__u64 *created, ns;

	/* The flow table's room, as the daemon granted it at its last sweep: under a flood, new flows
	 * go up to the first-packet path, whose refusal policy protects established flows. Asked
	 * first, so that a refused packet does not move an rr cursor. */
	budget = hash_budget.lookup(&zero);
	if (!budget || budget->created >= budget->allowed) {
		*reason = REASON_PASS_HASH_BUDGET;
		return -1;
	}
	ns = bpf_ktime_get_ns();
	if (svc->persist_timeout)
		real_id = template_real(key, svc, ns);
	if (!real_id)
		real_id = pick_real(key, svc);
	real = real_id ? reals.lookup(&real_id) : NULL;
	if (!real || real->forwarding == FWD_NONE) {
		*reason = REASON_PASS_HASH_EMPTY;
		return -1;
	}
	*reason = REASON_PASS_FLOW_MISS;
	if (real->forwarding == FWD_MASQ) {
		/* The way back first, as DatapathMaps.install_flow() does: no reply may find the forward
		 * path open and the return path missing. insert() is BPF_NOEXIST: an existing entry
		 * (another flow of this client port to the same real, or a stale one) is not
		 * overwritten; Python decides then. */
		reverse_key_of(&rkey, key, real);
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
	 * meanwhile; only the creator counts the connection. */
	if (flows.insert(key, &fstate) == 0) {
		budget->created += 1;
		created = hash_conns.lookup(&real_id);
		if (created)
			*created += 1;
		/* a new connection is inactive until its handshake completes (IPVS's SYN_RECV) */
		conns = real_conns.lookup(&real_id);
		if (conns)
			__sync_fetch_and_add(&conns->inactive, 1);
		if (svc->persist_timeout)
			record_template(key, svc, real_id, ns);
	}
	return 0;
}

/* A closed connection's entries (the flow, and the way back of a masqueraded one), removed when a
 * SYN reuses its 5-tuple and XDP schedules the new connection itself: schedule_new() creates
 * entries only where none exist. */
static __always_inline void forget_flow(struct flow_key *key, __u32 real_id, __u32 seen)
{
	struct flow_key rkey = {};
	struct real_info *real = reals.lookup(&real_id);

	if (real && real->forwarding == FWD_MASQ) {
		reverse_key_of(&rkey, key, real);
		reverse.delete(&rkey);
	}
	/* only the CPU that removed it takes the connection off its real's counts */
	if (flows.delete(key) == 0)
		count_gone(real_id, seen);
}

/* Step 4 (schedule) for a service XDP decides itself: the flow entry schedule_new() created (or
 * another CPU did an instant ago), or NULL with the reason in `v` (the first-packet path decides). */
static __always_inline struct flow_state *
schedule_flow(struct flow_key *key, const struct service_info *svc, struct verdict *v)
{
	struct flow_state *flow;

	if (schedule_new(key, svc, &v->reason) != 0)
		return NULL;
	flow = flows.lookup(key);
	if (!flow) /* evicted already, or the update failed: the first-packet path decides */
		v->reason = REASON_PASS_FLOW_MISS;
	return flow;
}

/* Step 2 for a flow hit on a TCP connection attempt: a SYN on the 5-tuple of a connection that saw
 * FIN or RST (its entry lingers for the tcpfin/close timeouts) is a client reusing its port: a new
 * connection, scheduled afresh (IPVS's conn_reuse_mode=1 in ip_vs_in()) by the first-packet path, or
 * here for a service XDP schedules itself (a busy client reuses ports within the tcpfin timeout, so
 * most of its connections would go up otherwise): its old entries go, and STEP_SCHEDULE names the
 * service in *svc. A SYN on a live flow is a retransmission and stays with its real (STEP_KEEP).
 * STEP_OUT sends the packet up, the reason in `v`. */
static __always_inline int reopen_flow(struct packet *pkt, struct flow_state *flow,
				       struct verdict *v, struct service_info **svc)
{
	struct service_key skey = {};

	if (!pkt->opens || !(flow->tcp_seen & (SEEN_FIN | SEEN_RST)))
		return STEP_KEEP;
	v->reason = REASON_PASS_FLOW_REUSE;
	service_key_of(&skey, &pkt->key);
	*svc = services.lookup(&skey);
	if (!*svc || (*svc)->sched == SCHED_DAEMON)
		return STEP_OUT;
	forget_flow(&pkt->key, flow->real_id, flow->tcp_seen);
	return STEP_SCHEDULE;
}

/* Steps 3 and 4 for a packet with neither flow nor reverse entry: a VIP's first packet goes up to the
 * first-packet path (NFQUEUE), unless XDP decides the service itself (schedule_new()). A
 * TCP segment that opens no flow (no SYN, or SYN-ACK: the model's `opens`) is dropped here for a
 * service whose scheduler cannot re-derive its real (SVC_F_DROP_MIDFLOW_MISS), as the daemon and IPVS
 * would drop it: an ACK flood costs an XDP_DROP, not a trip through NFQUEUE. For the others (sh, dh,
 * mh) it goes up, and Python re-derives the real. Returns STEP_SCHEDULE with the service in *svc
 * when XDP decides this first packet, else STEP_OUT with the verdict in `v`. */
static __always_inline int new_flow(struct packet *pkt, struct verdict *v,
				    struct service_info **svc)
{
	struct service_key skey = {};

	service_key_of(&skey, &pkt->key);
	*svc = services.lookup(&skey);
	if (!*svc) {
		v->reason = REASON_PASS_NOT_VIP;
		return STEP_OUT;
	}
	if (pkt->key.proto == IPPROTO_TCP && !pkt->opens &&
	    ((*svc)->flags & SVC_F_DROP_MIDFLOW_MISS)) {
		v->action = XDP_DROP;
		v->reason = REASON_DROP_NO_FLOW_NOT_SYN;
		return STEP_OUT;
	}
	v->reason = REASON_PASS_FLOW_MISS;
	if (!pkt->first || (*svc)->sched == SCHED_DAEMON)
		return STEP_OUT;
	return STEP_SCHEDULE;
}

/* Step 5 for a masqueraded reply from a real: SNAT back to VIP:vport, towards the client. Returns the
 * real whose counters the packet goes to, or NO_ID when it is left as it was. */
static __always_inline __u32 reply(struct xdp_md *ctx, struct packet *pkt,
				   struct reverse_state *rev, struct verdict *v)
{
	struct lb_config *cfg;
	struct next_hop *hop;
	__u32 zero = 0, epoch = 0, ingress, slot;
	__u64 now = bpf_jiffies64();
	int rc, hop_kind;

	touch_flow(&rev->last_seen_ns, &rev->seen_jiffies, &rev->tcp_seen, pkt->seen, now);
	if (pkt->iph->ttl <= 1) {
		v->reason = REASON_PASS_TTL_EXCEEDED;
		return NO_ID;
	}
	cfg = config.lookup(&zero);
	if (cfg)
		epoch = cfg->hop_epoch;
	slot = client_hop_slot(pkt->key.daddr);
	hop = client_hops.lookup(&slot);
	if (!hop) { /* cannot happen: the slot is below the array's size */
		v->reason = REASON_PASS_NO_ROUTE;
		return NO_ID;
	}
	ingress = ctx->ingress_ifindex;
	rc = route(ctx, hop, ingress, epoch, now, pkt->key.proto, pkt->iph->tos, rev->vip,
		   pkt->key.daddr, rev->vport, pkt->key.dport, pkt->ip_bytes);
	hop_kind = next_hop(hop, ingress, rc, &v->reason, 1);
	if (hop_kind == HOP_NONE)
		return NO_ID;
	nat_rewrite(pkt->iph, &pkt->iph->saddr, pkt->sport, pkt->l4check,
		    pkt->key.proto == IPPROTO_UDP, rev->vip, rev->vport, hop_kind != HOP_KERNEL);
	if (hop_kind != HOP_KERNEL)
		set_macs(pkt->eth, hop);
	v->hop = hop_kind;
	return rev->real_id;
}

/* Step 5 for a client → VIP packet of a flow: rewrite by the real's forwarding method (masquerading,
 * direct routing, IPIP). Returns the real whose counters the packet goes to, or NO_ID when it is left
 * as it was (the first-packet path forwards and counts what goes up unmodified). */
static __always_inline __u32 forward(struct xdp_md *ctx, struct packet *pkt,
				     struct flow_state *flow, struct verdict *v)
{
	struct real_info *real;
	struct lb_config *cfg;
	struct next_hop *hop;
	struct flow_key *key = &pkt->key;
	__u32 zero = 0, real_id, ingress, before;
	__u64 now = bpf_jiffies64();
	int rc, hop_kind;

	real_id = flow->real_id;
	before = flow->tcp_seen;
	touch_flow(&flow->last_seen_ns, &flow->seen_jiffies, &flow->tcp_seen, pkt->seen, now);
	if (flow->tcp_seen != before)
		count_transition(real_id, before, flow->tcp_seen);
	real = reals.lookup(&real_id);
	if (!real || real->forwarding == FWD_NONE) {
		v->reason = REASON_PASS_NO_REAL;
		return NO_ID;
	}
	/* the real's slot in real_hops exists: real_id is below MAX_REALS, the size of both arrays */
	hop = real_hops.lookup(&real_id);
	cfg = config.lookup(&zero);
	if (!hop || !cfg) {
		v->reason = REASON_PASS_NO_ROUTE;
		return NO_ID;
	}
	ingress = ctx->ingress_ifindex;
	if (real->forwarding == FWD_MASQ) {
		if (pkt->iph->ttl <= 1) {
			v->reason = REASON_PASS_TTL_EXCEEDED;
			return NO_ID;
		}
		rc = route(ctx, hop, ingress, cfg->hop_epoch, now, key->proto, pkt->iph->tos,
			   key->saddr, real->addr, key->sport, real->port, pkt->ip_bytes);
		hop_kind = next_hop(hop, ingress, rc, &v->reason, 0);
		if (hop_kind == HOP_NONE)
			return NO_ID;
		nat_rewrite(pkt->iph, &pkt->iph->daddr, pkt->dport, pkt->l4check,
			    key->proto == IPPROTO_UDP, real->addr, real->port,
			    hop_kind != HOP_KERNEL);
		if (hop_kind != HOP_KERNEL)
			set_macs(pkt->eth, hop);
	} else if (real->forwarding == FWD_ROUTE) {
		rc = route(ctx, hop, ingress, cfg->hop_epoch, now, key->proto, pkt->iph->tos,
			   key->saddr, real->addr, key->sport, key->dport, pkt->ip_bytes);
		hop_kind = next_hop(hop, ingress, rc, &v->reason, 0);
		if (hop_kind == HOP_NONE || hop_kind == HOP_KERNEL)
			/* unmodified: the first-packet path forwards it and counts it */
			return NO_ID;
		set_macs(pkt->eth, hop);
	} else {
		if (!cfg->tunnel_saddr) {
			v->reason = REASON_PASS_NO_TUNNEL_SRC;
			return NO_ID;
		}
		rc = route(ctx, hop, ingress, cfg->hop_epoch, now, IPPROTO_IPIP, pkt->iph->tos,
			   cfg->tunnel_saddr, real->addr, 0, 0,
			   pkt->ip_bytes + sizeof(struct iphdr));
		hop_kind = next_hop(hop, ingress, rc, &v->reason, 0);
		if (hop_kind == HOP_NONE)
			return NO_ID;
		rc = ipip_encap(ctx, cfg->tunnel_saddr, real->addr,
				hop_kind == HOP_KERNEL ? NULL : hop);
		if (rc) {
			v->action = rc == -1 ? XDP_PASS : XDP_ABORTED;
			v->reason = rc == -1 ? REASON_PASS_NO_HEADROOM : REASON_ABORTED_ENCAP;
			return NO_ID;
		}
	}
	v->hop = hop_kind;
	return real_id;
}

int xdp_lb(struct xdp_md *ctx)
{
	struct packet pkt = {};
	struct verdict v = { .action = XDP_PASS, .hop = HOP_NONE };
	struct flow_state *flow;
	struct reverse_state *rev = NULL;
	struct service_info *svc = NULL;
	int step;
	__u64 *counted;
	__u32 real_id = NO_ID; /* whose traffic counters count this packet: set once, by step 5 */

	/* 1. parse */
	if (parse_packet((void *)(long)ctx->data, (void *)(long)ctx->data_end, &pkt, &v) < 0)
		goto out;

	/* 2. flow lookup: a client → VIP packet of a scheduled flow goes straight to its real, with one
	 * lookup. Like IPVS (ip_vs_in() looks up the connection first and the service only to schedule),
	 * a flow outlives its service's entry until the sweeper ends it. */
	flow = flows.lookup(&pkt.key);
	if (flow) {
		step = reopen_flow(&pkt, flow, &v, &svc);
	} else {
		/* 3. reverse lookup: a masqueraded reply from a real goes back to its client; else
		 * 4. service lookup, and schedule when XDP decides the service itself */
		rev = reverse.lookup(&pkt.key);
		step = rev ? STEP_KEEP : new_flow(&pkt, &v, &svc);
	}
	if (step == STEP_OUT)
		goto out;
	/* one place schedules (a reused 5-tuple or a first packet): the scheduler code is inlined, and
	 * so verified, once */
	if (step == STEP_SCHEDULE) {
		flow = schedule_flow(&pkt.key, svc, &v);
		if (!flow)
			goto out;
	}

	/* 5. rewrite: towards the flow's real, or back to the client */
	real_id = rev ? reply(ctx, &pkt, rev, &v) : forward(ctx, &pkt, flow, &v);

	/* 6. verdict: out of the ingress interface, out of another one, or up to the kernel */
	if (v.hop == HOP_TX)
		v.action = XDP_TX;
	else if (v.hop == HOP_REDIRECT)
		v.action = XDP_REDIRECT;
out:
	counted = reason_counts.lookup(&v.reason);
	if (counted)
		*counted += 1;
	if (real_id != NO_ID)
		count_traffic(real_counts.lookup(&real_id), rev != NULL, pkt.ip_bytes);
	return v.action;
}
