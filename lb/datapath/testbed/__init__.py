"""The namespace testbed every end-to-end test, `make demo`, `lbxdp record` and `make bench`
builds on: topologies of network namespaces, real servers and clients in them, all torn down.

    from lb.datapath.testbed import two_arm, RealSpec

    with two_arm(reals=3) as topo:
        topo.start_http_servers()
        topo.run("lb", ["lbxdp", "attach", *[i.name for i in topo.lb_ifaces]])
        print(topo.curl(30))        # ["r1", "r2", "r3", ...] — who answered each request

See docs/testbed.md for the diagrams and addresses.
"""

from .build import mac_for, one_arm, two_arm
from .clients import HeldConnection
from .hosts import Host, Iface, RealSpec
from .naming import make_prefix, subnet_index
from .nsenter import in_netns_call, pids_in_netns, read_sysctl, write_sysctls
from .procs import CommandFailed
from .teardown import cleanup_stale
from .topology import Topology
from .wait import wait_until

__all__ = [
    "CommandFailed",
    "HeldConnection",
    "Host",
    "Iface",
    "RealSpec",
    "Topology",
    "cleanup_stale",
    "in_netns_call",
    "mac_for",
    "make_prefix",
    "one_arm",
    "pids_in_netns",
    "read_sysctl",
    "subnet_index",
    "two_arm",
    "wait_until",
    "write_sysctls",
]
