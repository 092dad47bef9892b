"""The lbxdp daemon: the one authority on configuration, the first-packet path and flow lifetime."""
