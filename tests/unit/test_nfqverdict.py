"""lb.datapath.nfqverdict: the batch drop verdict's numbers are the kernel's (read from the installed
UAPI headers) and its message is laid out as nfnetlink_queue expects."""

from __future__ import annotations

import re
import socket
import struct
from pathlib import Path

import pytest

from lb.datapath import nfqverdict as V

HEADERS = Path("/usr/include/linux/netfilter")


def _enum(text: str, name: str) -> dict[str, int]:
    """The members of `enum name { … }` numbered as C numbers them (no explicit values in these)."""
    body = re.search(r"enum\s+" + name + r"\s*\{(.*?)\}", text, re.S)
    assert body, name
    members = [m.group(1) for m in re.finditer(r"^\s*(\w+)\s*,", re.sub(r"/\*.*?\*/", "", body[1]), re.M)]
    return {member: i for i, member in enumerate(members)}


@pytest.mark.skipif(not (HEADERS / "nfnetlink_queue.h").exists(), reason="no kernel UAPI headers installed")
def test_numbers_are_the_kernels() -> None:
    queue = (HEADERS / "nfnetlink_queue.h").read_text()
    assert _enum(queue, "nfqnl_msg_types")["NFQNL_MSG_VERDICT_BATCH"] == V.NFQNL_MSG_VERDICT_BATCH
    assert _enum(queue, "nfqnl_attr_type")["NFQA_VERDICT_HDR"] == V.NFQA_VERDICT_HDR
    nfnl = (HEADERS / "nfnetlink.h").read_text()
    assert int(re.search(r"#define\s+NFNL_SUBSYS_QUEUE\s+(\d+)", nfnl)[1]) == V.NFNL_SUBSYS_QUEUE  # type: ignore[index]
    assert int(re.search(r"#define\s+NFNETLINK_V0\s+(\d+)", nfnl)[1]) == V.NFNETLINK_V0  # type: ignore[index]
    netfilter = Path("/usr/include/linux/netfilter.h").read_text()
    assert int(re.search(r"#define\s+NF_DROP\s+(\d+)", netfilter)[1]) == V.NF_DROP  # type: ignore[index]


def test_the_message_drops_up_to_the_id_on_the_queue() -> None:
    msg = V.drop_batch_message(4711, 0x01020304)
    assert len(msg) == V.MESSAGE_LEN == 32
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", msg)
    assert (length, kind >> 8, kind & 0xFF, flags) == (32, 3, 3, 1)  # NFNL_SUBSYS_QUEUE, VERDICT_BATCH, REQUEST
    assert (seq, pid) == (0, 0)  # the kernel asks for neither on a verdict
    family, version, queue = struct.unpack_from("!BBH", msg, 16)
    assert (family, version, queue) == (socket.AF_UNSPEC, 0, 4711)
    attr_len, attr_type = struct.unpack_from("=HH", msg, 20)
    assert (attr_len, attr_type) == (12, 2)
    assert struct.unpack_from("!II", msg, 24) == (0, 0x01020304)  # NF_DROP, the last id


def test_drops_are_sent_per_flush_and_when_the_limit_is_reached() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        batch = V.DropBatch(a.fileno(), 7, limit=3)
        batch.flush()  # nothing noted: nothing sent
        batch.note(10)
        batch.note(11)
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(64)
        batch.note(12)  # the limit: sent at once
        assert b.recv(64) == V.drop_batch_message(7, 12)
        batch.note(13)
        batch.close()  # what is noted goes out on close
        assert b.recv(64) == V.drop_batch_message(7, 13)
        assert batch.messages == 2
    finally:
        a.close()
        b.close()
