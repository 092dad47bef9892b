/* lbxdp: helpers on a flow: the keys its packets look up (service, way back), the stamp on its
 * entries, its real's traffic counters. Map calls stay in lb_kern.c, the one file bcc rewrites. */
#ifndef LB_FLOW_H
#define LB_FLOW_H

/* The services key of a client → VIP packet: its destination address, port and protocol. */
static __always_inline void service_key_of(struct service_key *skey, const struct flow_key *key)
{
	skey->vip = key->daddr;
	skey->port = key->dport;
	skey->proto = key->proto;
}

/* The reverse key of a masqueraded flow: the 5-tuple of the real's replies to the client. */
static __always_inline void reverse_key_of(struct flow_key *rkey, const struct flow_key *key,
					   const struct real_info *real)
{
	rkey->saddr = real->addr;
	rkey->daddr = key->saddr;
	rkey->sport = real->port;
	rkey->dport = key->sport;
	rkey->proto = key->proto;
}

/* Per-CPU counters need no atomics: each CPU owns its slot. */
static __always_inline void count_traffic(struct traffic_counter *c, int outbound, __u64 bytes)
{
	if (!c)
		return;
	if (outbound) {
		c->out_packets += 1;
		c->out_bytes += bytes;
	} else {
		c->in_packets += 1;
		c->in_bytes += bytes;
	}
}

/* A flow counts as an active connection (IPVS's ESTABLISHED) from the client's ACK that completes
 * the handshake until a FIN or RST; before and after, inactive. lb.balancer.lifetime's phases say
 * the same of the same bits, and the daemon's sweep counts by them. */
static __always_inline int flow_active(__u32 seen)
{
	return (seen & (SEEN_ESTABLISHED | SEEN_FIN | SEEN_RST)) == SEEN_ESTABLISHED;
}

/* Stamp a flow entry, writing only what changed: last_seen once it is LAST_SEEN_SLACK_TICKS behind
 * (the sweeper's timeouts are seconds), the TCP bits when a new one shows up. An established flow's
 * entry is then read on every packet but written a few times a second, so its cache line stays
 * shared between CPUs instead of bouncing, and the nanosecond clock is read as rarely. */
static __always_inline void touch_flow(__u64 *last_seen_ns, __u32 *seen_jiffies, __u32 *tcp_seen,
				       __u32 seen, __u64 ticks)
{
	if ((__u32)ticks - *seen_jiffies >= LAST_SEEN_SLACK_TICKS || !*last_seen_ns) {
		*last_seen_ns = bpf_ktime_get_ns();
		*seen_jiffies = (__u32)ticks;
	}
	if ((*tcp_seen | seen) != *tcp_seen)
		*tcp_seen |= seen;
}

#endif /* LB_FLOW_H */
