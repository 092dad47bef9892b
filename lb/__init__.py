"""lbxdp: a Layer-4 load balancer with an XDP fast path and ipvsadm's language."""

__version__ = "0.1.0"
