/* Bench baselines and packet counter: return one fixed verdict (BENCH_VERDICT, set by the bench's
 * cflags), counting per CPU. XDP_PASS: the cheapest program that lets packets through. XDP_DROP: at
 * the balancer's ingress the forwarding ceiling; on a real's interface it counts what arrived. */
#include <uapi/linux/bpf.h>

#ifndef BENCH_VERDICT
#define BENCH_VERDICT XDP_PASS
#endif

BPF_TABLE("percpu_array", __u32, __u64, verdicts, 8); /* XDP verdict → packets */

int xdp_bench_verdict(struct xdp_md *ctx)
{
	__u32 verdict = BENCH_VERDICT;
	__u64 *n = verdicts.lookup(&verdict);

	if (n)
		*n += 1;
	return BENCH_VERDICT;
}
