"""Example lbxdp scheduler plugin (see docs/schedulers.md)."""
