"""bpf/ is formatted by its .clang-format (kernel style, 100 columns): a diff-free `clang-format --dry-run`."""

from __future__ import annotations

import shutil
import subprocess

from lb.datapath.sources import bpf_dir

BPF = bpf_dir()


def test_bpf_sources_are_clang_formatted() -> None:
    clang_format = shutil.which("clang-format")
    assert clang_format, "clang-format is missing: scripts/setup.sh installs it (make setup)"
    sources = sorted(str(p) for p in BPF.glob("*.[ch]"))
    assert sources
    done = subprocess.run([clang_format, "--dry-run", "-Werror", *sources], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr[:4000]


def test_bpf_functions_stay_short() -> None:
    # STYLE: no function in bpf/ over 150 lines, unless a comment at its head says why
    long = []
    for path in sorted(BPF.glob("*.[ch]")):
        lines = path.read_text().split("\n")
        for i, line in enumerate(lines):
            if line.startswith("{"):
                end = lines.index("}", i)
                if end - i - 1 > 150 and "over 150 lines because" not in "\n".join(lines[max(0, i - 12):i]):
                    long.append(f"{path.name}:{i} {lines[i - 1]} ({end - i - 1} lines)")
    assert long == []
