"""lb.bench.tcp: reading wrk's report, and how a run that fails is kept (pure: a scripted topology)."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from lb.bench.tcp import parse_wrk

WRK = """\
Running 3s test @ http://10.7.0.100:80/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.01ms    1.20ms  20.00ms   90.00%
  25000 requests in 3.00s, 3.60MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:   8333.33
Transfer/sec:      1.20MB
"""


def test_rate_total_and_errors() -> None:
    assert parse_wrk(WRK) == (8333.33, 25000, 10)


def test_clean_run_has_no_errors() -> None:
    clean = "\n".join(line for line in WRK.splitlines() if "errors" not in line and "Non-2xx" not in line)
    assert parse_wrk(clean) == (8333.33, 25000, 0)


def test_no_rate_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="Requests/sec"):
        parse_wrk("unable to connect to 10.7.0.100:80 Connection refused\n")


class FakeTopo:
    """What tcp.run asks of a topology, with wrk answering from a script: one entry per wrk call,
    either a return code (non-zero: wrk failed) or the report to print."""

    def __init__(self, script: list[int | str]) -> None:
        self.script = list(script)
        self.vip = "10.7.0.100"
        self.reals = [SimpleNamespace(ip=f"10.7.2.{i}", name=f"r{i}") for i in (1, 2, 3)]
        self.client = SimpleNamespace(netns="client-ns")
        self.commands: list[list[str]] = []

    def run(self, host: str, argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        self.commands.append(argv)
        if argv[0] != "wrk":
            return subprocess.CompletedProcess(argv, 0, "", "")
        step = self.script.pop(0)
        if isinstance(step, int):
            return subprocess.CompletedProcess(argv, step, "", "unable to connect")
        return subprocess.CompletedProcess(argv, 0, step, "")


def test_a_failed_run_is_kept_with_its_reason_and_later_runs_go_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    import lb.datapath.testbed
    from lb.bench import tcp

    monkeypatch.setattr(lb.datapath.testbed, "write_sysctls", lambda netns, settings: None)
    # quick: lbxdp req/s, lbxdp conn/s, iptables req/s, iptables conn/s per run; run 1's iptables
    # conn/s fails, runs 2 and 3 of it succeed
    script: list[int | str] = [WRK, WRK, WRK, 1] + [WRK] * 8
    topo = FakeTopo(script)
    live = SimpleNamespace(topo=topo, scheduled=iter(range(0, 1000, 10)).__next__)
    rows = {r.name: r for r in tcp.run(live, 3, 1.0, lambda _: None, quick=True)}
    row = rows["iptables DNAT conn/s"]
    assert row.samples == (8333.33, 8333.33)
    assert row.failed == ("run 1: wrk exited 1: unable to connect",)
    assert "2 of 3 runs" in row.check
    assert len(rows["lbxdp conn/s"].samples) == 3
    assert rows["lbxdp conn/s"].check.endswith("; 30 connections scheduled by the daemon")  # 3 × (10 a read)
    assert "scheduled" not in row.check
    assert rows["HAProxy (TCP mode) conn/s"].skipped == "left out of --quick (full run only)"
    assert not topo.script  # every scripted wrk run happened: none was skipped after the failure
    dnat = [c for c in topo.commands if c[0] == "iptables"]
    # not the reals' lbxdp ports (module doc): TCP to 8080, UDP (case 3's chain) to 5354
    assert {c[c.index("-p") + 1]: c[-1].rsplit(":")[1] for c in dnat} == {"tcp": "8080", "udp": "5354"}


def test_an_in_xdp_row_counts_what_went_through_nfqueue_and_says_where_it_was_decided(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import lb.datapath.testbed
    from lb.bench import tcp

    monkeypatch.setattr(lb.datapath.testbed, "write_sysctls", lambda netns, settings: None)
    topo = FakeTopo([WRK] * 100)
    commands: list[tuple[str, ...]] = []
    reads = iter(range(1000))

    def status() -> dict[str, object]:
        n = next(reads)  # XDP created 5 more flows at every read; NFQUEUE saw n packets at odd ones
        return {"xdp_scheduled": 5 * n, "first_path_packets": n if n % 2 else 0,
                "first_packets_decided": {f"TCP {topo.vip}:83": "xdp", f"TCP {topo.vip}:84": "daemon (x)"}}

    live = SimpleNamespace(topo=topo, scheduled=lambda: 0, status=status, services=set(),
                           lbxdp=lambda *words: commands.append(words))
    rows = {r.name: r for r in tcp.run(live, 1, 1.0, lambda _: None, quick=True)}
    assert "-s" in commands[0] and ("-A", "-t", f"{topo.vip}:81", "-s", "mh", "-b", "mh-port") in commands
    # reads 2 and 3 around rr's run, 4 and 5 around wlc's (mh's came first)
    assert "; 3 packets through NFQUEUE (NOT decided in XDP);" in rows["lbxdp rr (in XDP) conn/s"].check
    assert "; 5 connections created by XDP" in rows["lbxdp rr (in XDP) conn/s"].check
    assert "; 5 packets through NFQUEUE (NOT decided in XDP);" in rows["lbxdp wlc (in XDP) conn/s"].check
    assert "first packets decided: xdp" in rows["lbxdp rr (in XDP) conn/s"].check
    assert "first packets decided: daemon (x)" in rows["lbxdp wlc (in XDP) conn/s"].check
    # every service the in-XDP rows measure was added, each to its own real port
    reals = [w for w in commands if w[0] == "-a"]
    assert {w[4].rsplit(":")[1] for w in reals} == {"8181", "8183", "8184"}
