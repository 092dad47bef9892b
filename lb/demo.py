"""`make demo`: lbxdp balancing real HTTP traffic in a throw-away network, start to finish.

Builds namespaces (a client, the balancer, three real servers behind a switch), runs real HTTP
servers, attaches lbxdp to the balancer's two interfaces, configures a round-robin service with
ipvsadm's syntax, sends real requests with curl, and prints where they went and which path their
packets took. Everything is torn down at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lb.daemon import instance
from lb.datapath.loader import PIN_ROOT
from lb.datapath.testbed import two_arm

LBXDP = str(Path(sys.executable).parent / "lbxdp")
REAL_PORT = 8080


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lbxdp-demo", description=__doc__)
    parser.add_argument("--requests", type=int, default=30, help="HTTP requests to send (default 30)")
    parser.add_argument("--scheduler", default="rr", help="scheduler of the demo service (default rr)")
    args = parser.parse_args(argv)
    console = Console()
    if os.geteuid() != 0:
        console.print("[red]lbxdp demo: must run as root (namespaces, XDP)[/]")
        return 1
    with two_arm(reals=3) as topo:
        vip = topo.vip

        def lbxdp(*words: str) -> str:
            console.print(f"[dim]lb#[/] lbxdp {' '.join(words)}")
            done = topo.run("lb", [LBXDP, *words], timeout=90, check=False)
            if done.returncode != 0:
                raise SystemExit(f"lbxdp {' '.join(words)} failed: {done.stderr.strip()}")
            return done.stdout

        console.rule("[bold]lbxdp demo")
        console.print(
            f"client {topo.client.ip} → VIP {vip}:80 on the balancer → reals "
            + ", ".join(f"{r.name} {r.ip}:{REAL_PORT}" for r in topo.reals)
        )
        topo.start_http_servers(port=REAL_PORT)
        started = time.monotonic()
        console.print(lbxdp("attach", *[i.name for i in topo.lb_ifaces]), end="")
        console.print(f"[dim](attached in {time.monotonic() - started:.1f} s: bcc compiles the XDP program)[/]")
        lbxdp("-A", "-t", f"{vip}:80", "-s", args.scheduler)
        for real in topo.reals:
            lbxdp("-a", "-t", f"{vip}:80", "-r", f"{real.ip}:{REAL_PORT}", "-m", "-w", "1")
        console.print(lbxdp("-L", "-n"), end="")

        console.print(f"\nclient$ curl http://{vip}/  × {args.requests} (a new TCP connection each)")
        answers = topo.curl(args.requests, f"http://{vip}/")
        where = Counter(a or "failed" for a in answers)
        title = f"Where {args.requests} requests went ({args.scheduler}, masquerading {vip}:80 → :{REAL_PORT})"
        table = Table(title=title)
        table.add_column("real server")
        table.add_column("address")
        table.add_column("requests", justify="right")
        table.add_column("share", justify="right")
        for real in topo.reals:
            n = where.get(real.name, 0)
            table.add_row(real.name, f"{real.ip}:{REAL_PORT}", str(n), f"{100 * n / max(1, len(answers)):.0f}%")
        if where.get("failed"):
            table.add_row("[red]failed[/]", "", str(where["failed"]), "")
        console.print(table)

        console.print(lbxdp("-L", "-n", "--stats"), end="")
        console.print(lbxdp("status"), end="")
        status = json.loads(lbxdp("status", "--json"))
        fast, first = status["xdp_forwarded"], status["first_path_packets"]
        paths = Table(title="Which path the packets took")
        paths.add_column("path")
        paths.add_column("packets", justify="right")
        paths.add_row("fast path: XDP rewrite in the kernel", str(fast))
        paths.add_row("first-packet path: NFQUEUE → Python scheduler", str(first))
        console.print(paths)
        console.print(lbxdp("detach"), end="")
        ok = not where.get("failed") and len(where) == len(topo.reals)
    # The balancer's namespace is gone: its run directory (the daemon's log) and pins go with it.
    instance.remove_stale([instance.RUN_ROOT, PIN_ROOT])
    console.print("[green]demo finished: namespaces removed[/]" if ok else "[red]demo finished with failures[/]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
