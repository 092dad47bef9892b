/* Bench SYN generator for the new-flows case: run with BPF_PROG_RUN in live-frames mode on the
 * client's veth, every frame is a TCP SYN of a flow never sent before (the next source port, then
 * the next source address), transmitted with XDP_TX towards the balancer. */
#include <uapi/linux/bpf.h>

#ifndef SYN_PORTS
#define SYN_PORTS 64000 /* source ports per source address, from the template's port up */
#endif
#ifndef SYN_ADDRS
#define SYN_ADDRS 8 /* source addresses, from the template's address up (the client's aliases) */
#endif
#define SYN_FRAME 60 /* Ethernet 14 + IPv4 20 + TCP 20, padded to a 64-byte frame without FCS */
#define SYN_IP_CHECK_OFF 24
#define SYN_SADDR_LO_OFF 28 /* the low 16 bits of the source address */
#define SYN_SPORT_OFF 34
#define SYN_TCP_CHECK_OFF 50

struct syn_frame {
	__u8 bytes[SYN_FRAME];
};

BPF_TABLE("array", __u32, struct syn_frame, syn_template, 1); /* the SYN of flow 0 */
/* 0: flows sent. One shared counter, added to atomically: BPF_PROG_RUN may run on either CPU
 * from one call to the next, and per-CPU cursors would send the same flow twice. */
BPF_TABLE("array", __u32, __u64, syn_cursor, 1);

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), on 16-bit words as the packet holds them. */
static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~old;
	sum += new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

int xdp_bench_syn(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct syn_frame *tmpl = syn_template.lookup(&zero);
	__u64 *cursor = syn_cursor.lookup(&zero);
	__u16 old_port, new_port, old_addr, new_addr, ip_check, tcp_check;
	__u64 n;

	if (!tmpl || !cursor || data + SYN_FRAME > data_end)
		return XDP_DROP;
	n = __sync_fetch_and_add(cursor, 1);
	/* the template is copied every time: live frames share pages with the receiver */
	__builtin_memcpy(data, tmpl->bytes, SYN_FRAME);
	old_port = *(__u16 *)(data + SYN_SPORT_OFF);
	old_addr = *(__u16 *)(data + SYN_SADDR_LO_OFF);
	new_port = bpf_htons(bpf_ntohs(old_port) + (__u16)(n % SYN_PORTS));
	new_addr = bpf_htons(bpf_ntohs(old_addr) + (__u16)((n / SYN_PORTS) % SYN_ADDRS));
	ip_check = *(__u16 *)(data + SYN_IP_CHECK_OFF);
	tcp_check = *(__u16 *)(data + SYN_TCP_CHECK_OFF);
	ip_check = csum_replace16(ip_check, old_addr, new_addr);
	tcp_check = csum_replace16(tcp_check, old_addr, new_addr); /* the pseudo-header's source */
	tcp_check = csum_replace16(tcp_check, old_port, new_port);
	*(__u16 *)(data + SYN_IP_CHECK_OFF) = ip_check;
	*(__u16 *)(data + SYN_TCP_CHECK_OFF) = tcp_check;
	*(__u16 *)(data + SYN_SADDR_LO_OFF) = new_addr;
	*(__u16 *)(data + SYN_SPORT_OFF) = new_port;
	return XDP_TX;
}
