"""What a daemon starts from: the state its predecessor saved, the program loaded on the maps that
state describes (or on fresh ones when it does not), the NFQUEUE bound, and no leftovers of
namespaces that are gone.

Each step is a function the daemon (lb.daemon.daemon) calls once from its constructor.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import Any

from lb.daemon import instance, statefile
from lb.daemon.firstpath import QUEUE_LEN, QUEUE_NUM
from lb.datapath import loader

log = logging.getLogger("lbxdp")


def saved() -> statefile.SavedState | None:
    """What the previous daemon of this namespace left (None: nothing, or unreadable; the
    daemon says which when it starts)."""
    try:
        return statefile.read(instance.state_path())
    except ValueError:
        return None


def read_state() -> tuple[statefile.SavedState | None, str | None]:
    """The saved state, and why it cannot be used (None when it can, or when there is none)."""
    try:
        return statefile.read(instance.state_path()), None
    except ValueError as exc:
        return None, str(exc).removeprefix(f"{instance.state_path()}: ")


def load_checked(
    tunables: loader.Tunables, adopt_from: list[str]
) -> tuple[loader.Datapath, statefile.SavedState | None, str | None]:
    """Load the program on the maps of the one attached to `adopt_from`, if the saved state
    describes them; else on fresh maps, with no saved state. Returns the program, the usable saved
    state, and why the saved state is unusable (None when it is usable or absent).

    The flows in adopted maps name services and reals by id: read with another numbering
    (a corrupt, foreign or missing state.json) they would go to the wrong reals."""
    state, unusable = read_state()
    if unusable is None and adopt_from:
        loader.ensure_bpffs()
        adopted = loader.pin_maps_of_attached(adopt_from, loader.pin_dir_for())
        if adopted:
            log.info("adopted the maps of the program attached to %s: %s", ", ".join(adopt_from), ", ".join(adopted))
    elif unusable is not None:
        loader.unpin()
    dp = loader.load(tunables)
    if unusable is None:
        reals = dp.maps.read_reals()
        unusable = statefile.mismatch(state, dp.maps.read_services(), reals.get, len(reals))
        if unusable is not None:  # the maps' numbering is not ours: load again on fresh maps
            dp.close()
            loader.unpin()
            dp = loader.load(tunables)
    if unusable is not None:
        state = None
        log.warning("saved state %s unusable (%s): starting with an empty configuration and flow table",
                    instance.state_path(), unusable)
    return dp, state, unusable


def bind_queue(on_packet: Callable[[Any], None]) -> Any:
    """The NFQUEUE first packets arrive on, bound to `on_packet`."""
    from netfilterqueue import NetfilterQueue

    nfq = NetfilterQueue()
    try:
        nfq.bind(QUEUE_NUM, on_packet, max_len=QUEUE_LEN)
    except OSError as exc:
        raise RuntimeError(f"cannot bind NFQUEUE {QUEUE_NUM}: {exc}") from exc
    return nfq


def remove_stale_instances() -> None:
    """Pins and run directories of namespaces deleted without `lbxdp detach` (a test topology torn
    down, a container gone) would hold their maps' memory forever: remove them."""
    for root in (loader.PIN_ROOT, instance.RUN_ROOT):
        for stale in instance.stale_dirs(root):
            log.info("removing %s: its network namespace is gone", stale)
            shutil.rmtree(stale, ignore_errors=True)
