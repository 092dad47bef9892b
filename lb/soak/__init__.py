"""`make soak`: lbxdp under churn, config edits, health flaps and daemon SIGKILLs for N minutes, then
proof that nothing grew: the daemon's RSS and every map's entry count back where they started, no
reset on a real that stayed up, and every connection that was established before a SIGKILL alive
after it.

Modules: plan.py (what happens when; pure), verdict.py (records, summary and verdicts; pure),
report.py (the rich tables; pure), load.py (the clients, I/O), probe.py (samples of the daemon and
the maps, I/O), run.py (the testbed, lbxdp, the conductor, teardown; the entry point).
See docs/soak.md.
"""
