/* Test build only (tests/bpf/test_replay.py, cflags "-include <this file>"): every masqueraded packet
 * keeps its stale L4 checksum, so replay against the model must fail loudly, naming TCP.chksum. */
#define nat_l4_csum(l4check, is_udp, old_addr, new_addr, old_port, new_port) ((void)0)
