"""The machine a run measured on: kernel, CPU model, core count, memory (for docs/benchmarks.md)."""

from __future__ import annotations

import os
import platform
from typing import Any


def describe() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
                    break
    except OSError:
        pass
    return {"kernel": platform.release(), "cpu": model, "cores": os.cpu_count() or 0,
            "memory_gib": round(mem_kb / 2**20, 1), "python": platform.python_version()}
