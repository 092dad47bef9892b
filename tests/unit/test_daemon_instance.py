"""A namespace's run directory and pins are keyed by its inode, which the kernel reuses: a new
namespace with an old one's inode must not adopt that namespace's saved services and flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from lb.daemon import instance


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    run_root, pin_root = tmp_path / "run", tmp_path / "pins"
    monkeypatch.setattr(instance, "RUN_ROOT", run_root)
    monkeypatch.setattr(instance, "netns_id", lambda: "netns-4026532000")
    return run_root, pin_root


def test_the_namespace_that_made_the_directory_keeps_it(roots, monkeypatch: pytest.MonkeyPatch) -> None:
    run_root, pin_root = roots
    monkeypatch.setattr(instance, "netns_cookie", lambda: "77")
    assert instance.forget_previous_incarnation(pin_root) is False
    (run_root / "netns-4026532000" / "state.json").write_text("{}")
    (pin_root / "netns-4026532000").mkdir(parents=True)
    assert instance.forget_previous_incarnation(pin_root) is False  # a restart in the same namespace
    assert (run_root / "netns-4026532000" / "state.json").exists() and (pin_root / "netns-4026532000").exists()


def test_a_new_namespace_with_a_reused_inode_starts_clean(roots, monkeypatch: pytest.MonkeyPatch) -> None:
    run_root, pin_root = roots
    monkeypatch.setattr(instance, "netns_cookie", lambda: "77")
    instance.forget_previous_incarnation(pin_root)
    (run_root / "netns-4026532000" / "state.json").write_text("{}")
    (pin_root / "netns-4026532000" / "flows").mkdir(parents=True)
    monkeypatch.setattr(instance, "netns_cookie", lambda: "78")  # same inode, another namespace
    assert instance.forget_previous_incarnation(pin_root) is True
    assert not (run_root / "netns-4026532000" / "state.json").exists()
    assert not (pin_root / "netns-4026532000").exists()
    assert (run_root / "netns-4026532000" / "netns-cookie").read_text().strip() == "78"


def test_the_cookie_is_read_from_the_kernel() -> None:
    assert int(instance.netns_cookie()) > 0
