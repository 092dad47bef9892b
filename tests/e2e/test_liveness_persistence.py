"""Issue 5, persistence (`-p [timeout]`, `-M netmask`, ipvsadm(8)): repeated connections from one
client land on one real until the persistence timeout has passed since its last connection
(connections still in the table keep the template alive, as IPVS's controlled connections do);
another client is scheduled normally meanwhile, and after the timeout rr resumes.

One lab for the module; each test owns its service port on the VIP. `--set 900 1 300` makes closed
connections leave the table a second after their last packet, so the timeout is what we wait for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from lbxdp_helpers import Lbxdp
from liveness_helpers import HTTP_PORT, Lab, lab

pytestmark = [pytest.mark.root, pytest.mark.e2e]

PERSIST = 2  # seconds (-p)
TCPFIN = 1  # seconds a closed connection stays in the table (--set)
TICK = 1.0  # the daemon's sweep: expires flows, touches and drops templates
# After a client's last connection: its flow leaves the table within TCPFIN + TICK, the template
# PERSIST after the last touch, and one more tick for good measure.
EXPIRED_AFTER = TCPFIN + TICK + PERSIST + TICK + 0.5


@pytest.fixture(scope="module")
def world() -> Iterator[Lab]:
    with lab(client_aliases=2) as built:
        built.lbxdp("--set", "900", str(TCPFIN), "300")
        yield built


@pytest.fixture
def lbxdp(world: Lab) -> Iterator[Lbxdp]:
    yield world.lbxdp
    print(world.lbxdp.log_tail(60))  # shown only when the test failed


def one_real(answers: list[str | None]) -> str:
    assert None not in answers and len(set(answers)) == 1, answers
    return answers[0]  # type: ignore[return-value]


def test_one_client_sticks_to_one_real_until_the_timeout(world: Lab, lbxdp: Lbxdp) -> None:
    topo, port = world.topo, 82
    lbxdp.service(world.vip(port), "rr", world.reals(HTTP_PORT), extra=("-p", str(PERSIST)))
    listing = lbxdp("-L", "-n", "-t", world.vip(port)).stdout
    assert f"persistent {PERSIST}" in listing, listing
    client, other = topo.client.ip, topo.client_aliases[0]

    first = one_real(topo.curl(6, port=port, source=client))
    # Meanwhile another client is scheduled by rr: the next real, not the first client's.
    second = one_real(topo.curl(6, port=port, source=other))
    assert second != first
    # A pause shorter than the timeout does not unpin.
    time.sleep(PERSIST / 2)
    assert one_real(topo.curl(3, port=port, source=client)) == first

    # After the timeout the template is gone: rr resumes where it was (the third real), and the
    # client sticks to its new real again.
    time.sleep(EXPIRED_AFTER)
    third = one_real(topo.curl(4, port=port, source=client))
    assert third not in (first, second), (first, second, third)


def test_netmask_pins_a_whole_client_network(world: Lab, lbxdp: Lbxdp) -> None:
    topo, port = world.topo, 83
    lbxdp.service(world.vip(port), "rr", world.reals(HTTP_PORT),
                  extra=("-p", str(PERSIST), "-M", "255.255.255.0"))
    sources = [topo.client.ip, *topo.client_aliases]
    answers = [a for source in sources for a in topo.curl(3, port=port, source=source)]
    one_real(answers)  # three addresses of one /24: one template, one real


def test_without_persistence_the_same_client_is_spread(world: Lab, lbxdp: Lbxdp) -> None:
    """The control: the same client, the same reals, no -p: rr spreads its connections."""
    topo, port = world.topo, 84
    lbxdp.service(world.vip(port), "rr", world.reals(HTTP_PORT))
    assert sorted(topo.curl(6, port=port)) == ["r1", "r1", "r2", "r2", "r3", "r3"]
