"""bpf/ as the package `lb._bpf` (setup.py maps it): the XDP program's C sources, data found by
lb.datapath.sources through importlib.resources. No Python lives here beyond this marker."""
