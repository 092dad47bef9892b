"""lb.bench.tcp: reading wrk's report (pure)."""

from __future__ import annotations

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
