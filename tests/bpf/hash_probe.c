/* tests/bpf/test_hash.py's probe: the hashes of bpf/lb_hash.h on the values a frame carries, written
 * back into the frame, so that each can be compared with its Python twin apart from the datapath.
 * In: [0:4] val (host order), [4:8] addr, [8:10] port (network order), [12:16] offset (host order).
 * Out: [16:20] lb_hash_32(val, 8), [20:24] fmix32(val), [24:28] hash_fold(addr, port),
 * [28:32] mh_probe(hash_fold(addr, port), 0), [32:36] mh_probe(val, offset). */
#include <uapi/linux/bpf.h>

#include "lb_consts.h"
#include "lb_hash.h"

struct probe {
	__u32 val;
	__be32 addr;
	__be16 port;
	__u16 pad;
	__u32 offset;
	__u32 out[5];
};

int xdp_hash_probe(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct probe *p = data;

	if ((void *)(p + 1) > end)
		return XDP_ABORTED;
	p->out[0] = lb_hash_32(p->val, 8);
	p->out[1] = fmix32(p->val);
	p->out[2] = hash_fold(p->addr, p->port);
	p->out[3] = mh_probe(hash_fold(p->addr, p->port), 0);
	p->out[4] = mh_probe(p->val, p->offset);
	return XDP_TX;
}
