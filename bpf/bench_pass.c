/* Bench baseline: the cheapest XDP program that lets every packet through (XDP_PASS), with one
 * per-CPU counter so the bench can check that every BPF_PROG_RUN round ran it. */
#include <uapi/linux/bpf.h>

BPF_TABLE("percpu_array", __u32, __u64, verdicts, 8); /* XDP verdict → packets */

int xdp_bench_pass(struct xdp_md *ctx)
{
	__u32 verdict = XDP_PASS;
	__u64 *n = verdicts.lookup(&verdict);

	if (n)
		*n += 1;
	return XDP_PASS;
}
