/* Bench traffic generator: run with BPF_PROG_RUN in live-frames mode on the client's veth, it
 * writes a whole frame from a template, stamps the next source port of a range (incremental UDP
 * checksum, RFC 1624) and sends it with XDP_TX to the balancer. The template is rewritten every
 * time because live frames share their pages with the receiver: a balancer that DNATs in place
 * changes the page, and the pool hands that page back to the generator (net/bpf/test_run.c). */
#include <uapi/linux/bpf.h>

#ifndef GEN_FLOWS
#define GEN_FLOWS 1024
#endif
#define GEN_FRAME 60	 /* a 64-byte frame without its FCS */
#define GEN_SPORT_OFF 34 /* Ethernet 14 + IPv4 20 */
#define GEN_CHECK_OFF 40

struct gen_frame {
	__u8 bytes[GEN_FRAME];
};

BPF_TABLE("array", __u32, struct gen_frame, gen_template, 1); /* the frame, source port = base */
/* 0: frames sent, 1: frames refused */
BPF_TABLE("percpu_array", __u32, __u64, gen_state, 2);

int xdp_bench_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0, one = 1;
	struct gen_frame *tmpl = gen_template.lookup(&zero);
	__u64 *n = gen_state.lookup(&zero);
	__u16 base, to, check;
	__u32 sum;

	if (!tmpl || !n || data + GEN_FRAME > data_end) {
		n = gen_state.lookup(&one);
		if (n)
			*n += 1;
		return XDP_DROP;
	}
	__builtin_memcpy(data, tmpl->bytes, GEN_FRAME);
	base = *(__u16 *)(data + GEN_SPORT_OFF);
	to = bpf_htons(bpf_ntohs(base) + (__u16)(*n % GEN_FLOWS));
	*n += 1;
	check = *(__u16 *)(data + GEN_CHECK_OFF);
	if (check) {
		sum = (__u16)~check;
		sum += (__u16)~base + to;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		check = (__u16)~sum ? (__u16)~sum : 0xffff;
		*(__u16 *)(data + GEN_CHECK_OFF) = check;
	}
	*(__u16 *)(data + GEN_SPORT_OFF) = to;
	return XDP_TX;
}
