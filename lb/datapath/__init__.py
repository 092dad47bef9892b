"""Everything that touches the kernel: loading the XDP program, its maps, netlink, iptables, namespaces.

Import the submodules you need (`lb.datapath.loader`, `.maps`, `.progrun`, …); this package imports
nothing itself, so that importing one piece never drags in bcc or root-only machinery.
"""
