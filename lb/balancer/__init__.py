"""The balancer's pure core: what the daemon decides, with no kernel, socket or thread in sight.

engine (services, reals and their schedulers: where a new flow goes), decide (the first-packet
policy: reuse a flow, schedule one, or refuse), firstpacket (reading a queued frame into a flow
key), lifetime (timeouts and TCP phases of a flow), persistence (IPVS's client templates), health
(a health check as a value, and keepalived's rise/fall counting). The daemon (lb.daemon) runs them
against the kernel; replay (lb.replay) runs the same code against recorded packets; config parsing
(lb.config) and the probes (lb.datapath.probes) share its value types. Layers: docs/design.md.
"""
