"""bpf/bench_syn.c, the bench's SYN generator, from Python: its frame, its shape, its pacing.

The generator sends one TCP SYN template (or a UDP datagram: udp_frame) with the source port (and,
past SYN_PORTS, the source address) counted up, so every frame opens a flow never seen before. The new-flows case
(lb.bench.newflows) and the throughput experiment's rig (lb.experiments.throughput_rig) both drive
it; this module is what they share, so neither imports the other.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

SPORT_BASE = 1024  # the generator's first source port; bench_syn.c adds n % SYN_PORTS
SYN_FRAME = 60  # bench_syn.c's SYN_FRAME: a 64-byte frame without its FCS
GEN_MAX_PORTS = 64000  # bench_syn.c counts ports up from 1024 and must stay below 65536
SLICE = 0.01  # seconds per BPF_PROG_RUN call when pacing


def syn_frame(src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int, seq: int = 1) -> bytes:
    """The generator's template: a TCP SYN, padded to bench_syn.c's frame size."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    frame = bytes(Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=64)
                  / TCP(sport=sport, dport=dport, flags="S", seq=seq, window=64240))
    return frame + b"\x00" * (SYN_FRAME - len(frame))


def udp_frame(src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int) -> bytes:
    """A UDP datagram of the generator's frame size, as a template for new UDP flows. Its UDP
    checksum is 0 ("none", RFC 768), so the generator's change of the source address and port needs
    no UDP checksum work; the update bench_syn.c makes at the TCP checksum's offset lands in the
    payload. The payload fills the frame, so the IP length covers every byte sent."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    payload = b"\x00" * (SYN_FRAME - 14 - 20 - 8)
    frame = bytes(Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=64)
                  / UDP(sport=sport, dport=dport, chksum=0) / payload)
    assert len(frame) == SYN_FRAME
    return frame


def gen_shape(flows: int) -> tuple[int, int]:
    """(ports, addresses) with ports × addresses = flows and ports ≤ GEN_MAX_PORTS: bench_syn.c cycles
    through ports first, then source addresses, so its n-th frame belongs to flow n mod flows."""
    if flows < 1:
        raise ValueError(f"flows must be ≥ 1, not {flows}")
    for addrs in range(1, 256):
        if flows % addrs == 0 and flows // addrs <= GEN_MAX_PORTS:
            return flows // addrs, addrs
    raise ValueError(f"{flows} flows cannot be laid out as ports × ≤255 addresses")


class Generator:
    """bench_syn.c compiled to cycle through `ports` × `addrs` flows."""

    def __init__(self, ports: int, addrs: int) -> None:
        from lb.bench.programs import Program
        from lb.datapath.sources import source

        self.ports, self.addrs = ports, addrs
        self.prog = Program(source("bench_syn.c"), "xdp_bench_syn",
                            cflags=[f"-DSYN_PORTS={ports}", f"-DSYN_ADDRS={addrs}"])

    def arm(self, frame: bytes) -> None:
        """Load the template and restart the cursor at flow 0."""
        template = self.prog.bpf["syn_template"]
        leaf = template.Leaf()
        ctypes.memmove(ctypes.addressof(leaf), frame, len(frame))
        template[template.Key(0)] = leaf
        cursor = self.prog.bpf["syn_cursor"]
        cursor[cursor.Key(0)] = cursor.Leaf(0)

    def close(self) -> None:
        self.prog.close()


def paced_send(gen_fd: int, frame: bytes, ifindex: int, count: int, rate: int, slice_s: float = SLICE,
               limit_s: float = 30.0) -> int:
    """Run the generator `gen_fd` in live-frames mode on `ifindex` (in the calling thread's
    namespace) until `count` frames left at about `rate`/s, one BPF_PROG_RUN per `slice_s` slice,
    or `limit_s` passed; returns how many were sent."""
    from lb.datapath.progrun import BPF_F_TEST_XDP_LIVE_FRAMES, run as prog_run

    per_slice = max(1, int(rate * slice_s))
    sent, start = 0, time.monotonic()
    while sent < count and time.monotonic() - start < limit_s:
        due = (int((time.monotonic() - start) / slice_s) + 1) * per_slice
        if sent < due:
            n = min(per_slice, count - sent)
            prog_run(gen_fd, frame, ingress_ifindex=ifindex, repeat=n, flags=BPF_F_TEST_XDP_LIVE_FRAMES)
            sent += n
        else:
            time.sleep(slice_s / 4)
    return sent


def await_answers(read: Callable[[], int], before: int, sent: int, deadline: float,
                  quiet_s: float = 2.0) -> tuple[int, float]:
    """Poll the answer counter `read` every 20 ms until it is `sent` past `before`, stays still for
    `quiet_s` (the rest is not coming) or `deadline` passes (bounded: a wedged daemon ends the run,
    not the bench). Returns (the last reading, the monotonic time it was first seen)."""
    last, t_last, t_change = before, time.monotonic(), time.monotonic()
    while time.monotonic() < deadline and last - before < sent:
        time.sleep(0.02)
        now = read()
        if now != last:
            last, t_last, t_change = now, time.monotonic(), time.monotonic()
        elif time.monotonic() - t_change > quiet_s:
            break
    return last, t_last
