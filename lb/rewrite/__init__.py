"""The pure packet rewrite model of the XDP datapath: the oracle of the tests and the rewriter of the
first-packet path. `process(frame, tables, fib, ingress_ifindex)` → `Result`."""

from lb.rewrite.fib import Fib, FibResult, FibStatus, Route, StaticFib
from lb.rewrite.process import Counted, Result, forward_placed, process
from lb.rewrite.verdicts import Reason, Verdict

__all__ = [
    "Counted",
    "Fib",
    "FibResult",
    "FibStatus",
    "Reason",
    "Result",
    "Route",
    "StaticFib",
    "Verdict",
    "forward_placed",
    "process",
]
