"""Attach/detach on a veth in a namespace, natively and generically; pinned maps are adopted on reload."""

from __future__ import annotations

import os
import uuid

import fixtures as F
import pytest
from pyroute2 import IPRoute

from lb.datapath import loader
from lb.datapath.loader import AttachMode, Tunables
from lb.tables import FlowEntry

pytestmark = [pytest.mark.root, pytest.mark.bpf]


def _xdp_info(ifname: str) -> dict[str, object]:
    """The IFLA_XDP attributes of `ifname` (this thread's namespace), as pyroute2 reports them."""
    with IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=ifname)
    xdp = link.get_attr("IFLA_XDP")
    return {} if xdp is None else dict(xdp["attrs"])


# pyroute2 spells XDP_ATTACHED_DRV / _SKB (include/uapi/linux/if_link.h) as "xdp" / "xdpgeneric"
@pytest.mark.parametrize(
    "mode, attached, prog_id_attr",
    [
        (AttachMode.NATIVE, "xdp", "IFLA_XDP_DRV_PROG_ID"),
        (AttachMode.GENERIC, "xdpgeneric", "IFLA_XDP_SKB_PROG_ID"),
        (AttachMode.AUTO, "xdp", "IFLA_XDP_DRV_PROG_ID"),  # veth has a native XDP driver
    ],
)
def test_attach_then_detach(datapath, mode: AttachMode, attached: str, prog_id_attr: str) -> None:
    assert _xdp_info("a0").get("IFLA_XDP_ATTACHED") is None
    used = datapath.attach("a0", mode)
    try:
        info = _xdp_info("a0")
        assert info["IFLA_XDP_ATTACHED"] == attached
        assert info[prog_id_attr] == info["IFLA_XDP_PROG_ID"] > 0
        assert used is (AttachMode.NATIVE if attached == "xdp" else AttachMode.GENERIC)
    finally:
        loader.detach("a0")
    assert _xdp_info("a0").get("IFLA_XDP_ATTACHED") is None


def test_attach_to_a_missing_interface_says_so(datapath) -> None:
    with pytest.raises(loader.LoadError, match="cannot attach XDP to nosuchif0"):
        datapath.attach("nosuchif0", AttachMode.GENERIC)


def test_instance_follows_the_network_namespace(lab) -> None:
    here = loader.netns_instance()
    assert here == f"netns-{os.stat('/proc/thread-self/ns/net').st_ino}"
    assert here == f"netns-{os.stat(f'/run/netns/{lab.balancer}').st_ino}"  # the lab, pushed by the fixture


def test_pinned_maps_survive_a_reload(lab) -> None:
    instance = f"test-{uuid.uuid4().hex[:8]}"
    tunables = Tunables(max_flows=1024, max_services=64, max_reals=64, max_tx_ports=64)
    first = loader.load(tunables, instance=instance)
    try:
        assert first.pin_dir == loader.PIN_ROOT / instance
        first.maps.write(F.tables_with((F.TCP_M, 1)))
        first.maps.set_flow(F.TCP_M, FlowEntry(1, 1, last_seen_ns=12345))
        first.close()
        second = loader.load(tunables, instance=instance)
        try:
            adopted = second.maps.read()
            assert adopted.flows[F.TCP_M] == FlowEntry(1, 1, last_seen_ns=12345)
            assert adopted.reverse and adopted.services == F.SERVICES
        finally:
            second.close()
    finally:
        loader.unpin(instance)
    assert not (loader.PIN_ROOT / instance).exists()
