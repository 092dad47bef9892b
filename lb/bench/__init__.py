"""`make bench`: lbxdp against iptables DNAT, nftables, HAProxy and the machine's own ceiling (issue 7).

Run with `python -m lb.bench [--quick]`; see docs/benchmarks.md for the cases and the last results.
"""
