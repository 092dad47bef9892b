/* Bench baseline and packet counter: XDP_DROP everything, counting per CPU. At the balancer's
 * ingress it is the forwarding ceiling; on a real's interface it counts what arrived. */
#include <uapi/linux/bpf.h>

BPF_TABLE("percpu_array", __u32, __u64, verdicts, 8); /* XDP verdict → packets */

int xdp_bench_drop(struct xdp_md *ctx)
{
	__u32 verdict = XDP_DROP;
	__u64 *n = verdicts.lookup(&verdict);

	if (n)
		*n += 1;
	return XDP_DROP;
}
