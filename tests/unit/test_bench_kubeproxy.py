"""lb.bench.kubeproxy: the statistic chain gives each of n endpoints 1/n (pure)."""

from __future__ import annotations

import pytest

from lb.bench.kubeproxy import statistic_dnat


def probability(rule: list[str]) -> float | None:
    return float(rule[rule.index("--probability") + 1]) if "--probability" in rule else None


@pytest.mark.parametrize("n, want", [(1, [None]), (2, [0.5, None]), (3, [0.33333, 0.5, None]),
                                     (4, [0.25, 0.33333, 0.5, None])])
def test_probabilities_share_evenly(n: int, want: list[float | None]) -> None:
    rules = statistic_dnat("10.9.0.100", "tcp", 8081, [f"10.9.2.{i}:8080" for i in range(1, n + 1)])
    assert [probability(r) for r in rules] == want
    # what reaches endpoint i: it survives the i earlier rules and matches its own
    share, left = [], 1.0
    for p in [probability(r) for r in rules]:
        share.append(left * (p if p is not None else 1.0))
        left *= 1 - (p if p is not None else 1.0)
    assert share == pytest.approx([1 / n] * n, abs=1e-4)


def test_rule_shape() -> None:
    (rule,) = statistic_dnat("10.9.0.100", "udp", 9000, ["10.9.2.1:9000"])
    assert rule == ["iptables", "-t", "nat", "-A", "PREROUTING", "-d", "10.9.0.100/32", "-p", "udp",
                    "--dport", "9000", "-j", "DNAT", "--to-destination", "10.9.2.1:9000"]


def test_no_endpoints_is_an_error() -> None:
    with pytest.raises(ValueError, match="no endpoints"):
        statistic_dnat("10.9.0.100", "tcp", 80, [])
