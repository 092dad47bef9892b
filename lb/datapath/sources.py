"""Where the XDP program's C sources are, found one way: importlib.resources.

bpf/ stays at the top of the repository; setup.py ships it inside the package as `lb._bpf`, in a
wheel and in an editable install alike. Everything that compiles a program (the loader, the bench,
the testbed's decapsulator) and every test that reads a header asks here, so an installed lbxdp
finds its sources as a checkout does. Pure: no kernel access.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGE = "lb._bpf"
ENTRY_SOURCE = "lb_kern.c"


def bpf_dir() -> Path:
    """The directory of lb_kern.c and its headers: bcc takes a file name and an -I directory, so a
    real path is needed (the package is never zipped: setup.py ships it as plain files)."""
    return Path(str(files(PACKAGE).joinpath(ENTRY_SOURCE))).parent


def source(name: str) -> Path:
    """A file of bpf/ by name (a program, `lb_consts.h`, …)."""
    return bpf_dir() / name
