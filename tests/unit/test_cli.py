"""`lbxdp` front end through main([...]): help, config check, ipvsadm verbs to a stand-in daemon, subcommands."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path

import pytest

from lb.cli import SUBCOMMANDS, main

GOOD_RULES = """\
# two services
ipvsadm -A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.0.0.12:8080 -m
-a -t 10.0.0.1:80 -r 10.0.0.11:8080 -m -w 2
-A -u 10.0.0.1:53 -s sh -p
"""


def test_help_teaches_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "lbxdp -A -t 10.0.0.100:80 -s wrr" in out
    assert "lbxdp config check rules" in out
    for name in SUBCOMMANDS:
        assert name in out


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: lbxdp" in capsys.readouterr().out


def test_config_check_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    rules.write_text(GOOD_RULES)
    assert main(["config", "check", str(rules)]) == 0
    captured = capsys.readouterr()
    assert captured.out == (
        "-A -t 10.0.0.1:80 -s rr\n"
        "-a -t 10.0.0.1:80 -r 10.0.0.11:8080 -m -w 2\n"
        "-a -t 10.0.0.1:80 -r 10.0.0.12:8080 -m -w 1\n"
        "-A -u 10.0.0.1:53 -s sh -p 300\n"
    )
    assert captured.err == ""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -g\n", 2, "real server 10.0.0.2:8080: port differs"),
        ("\n# c\n-A -t 10.0.0.1:80 -s nope\n", 3, "Scheduler not found: 'nope'"),
        ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 70000\n", 1, "illegal weight specified: '70000'"),
        ("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n", 2, "Service already exists"),
        ("-A -t 10.0.0.1:80 -u 10.0.0.1:80\n", 1, "multiple 'service-address' options specified"),
    ],
)
def test_config_check_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str) -> None:
    rules = tmp_path / "bad.rules"
    rules.write_text(text)
    assert main(["config", "check", str(rules)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{rules}:{line}: {message}")
    assert captured.err.count("\n") == 1


def test_config_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"lbxdp: cannot read {tmp_path / 'nope'}: No such file or directory\n"


def test_config_check_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("-A -t 10.0.0.1:80 -s nope\n"))
    assert main(["config", "check", "-"]) == 2
    assert capsys.readouterr().err.startswith("<stdin>:1: Scheduler not found")


def test_config_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 2
    assert "usage: lbxdp config" in capsys.readouterr().err


def test_bad_ipvsadm_line_is_one_line_and_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-p"]) == 2
    assert capsys.readouterr().err == (
        "lbxdp: Illegal 'persistent' option with the 'add-server' command\n"
        "Try `lbxdp --help' for more information.\n"
    )


def test_unknown_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lbxdp: unknown command 'frobnicate'")
    assert "Try `lbxdp --help'" in err


class FakeDaemon:
    """Stands in for lb.daemon.client: records requests, answers like the daemon would."""

    def __init__(self, reply: dict | None = None, error: BaseException | None = None) -> None:
        self.requests: list[dict] = []
        self.reply = reply if reply is not None else {"ok": True, "output": ""}
        self.error = error

    def send(self, message: dict, write=None) -> dict:
        self.requests.append(message)
        if self.error is not None:
            raise self.error
        if write is not None:  # the real client streams the output to `write` as it arrives
            write(self.reply.get("output", ""))
        return self.reply


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch):
    def install(fake: FakeDaemon) -> FakeDaemon:
        module = types.ModuleType("lb.daemon.client")
        module.send = fake.send  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "lb.daemon.client", module)
        return fake

    return install


def test_ipvsadm_verb_goes_to_the_daemon(daemon, capsys: pytest.CaptureFixture[str]) -> None:
    fake = daemon(FakeDaemon({"ok": True, "output": "listing\n"}))
    assert main(["-A", "-t", "207.175.44.110:80", "-s", "rr"]) == 0
    assert fake.requests == [
        {
            "op": "ipvsadm",
            "command": {"verb": "ADD_SERVICE", "service": {"proto": "TCP", "vip": "207.175.44.110", "port": 80}, "scheduler": "rr"},
        }
    ]
    assert capsys.readouterr().out == "listing\n"


def test_daemon_refusal_exits_1(daemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon(FakeDaemon({"ok": False, "error": "Service already exists: TCP 10.0.0.1:80"}))
    assert main(["-A", "-t", "10.0.0.1:80"]) == 1
    assert capsys.readouterr().err == "lbxdp: Service already exists: TCP 10.0.0.1:80\n"


class DaemonNotRunning(ConnectionError):
    pass


@pytest.mark.parametrize("error", [DaemonNotRunning("x"), FileNotFoundError(2, "x"), ConnectionRefusedError(111, "x")])
def test_no_daemon(daemon, capsys: pytest.CaptureFixture[str], error: BaseException) -> None:
    daemon(FakeDaemon(error=error))
    assert main(["-L", "-n"]) == 1
    assert capsys.readouterr().err == (
        "lbxdp: no lbxdp daemon is running in this network namespace (start one with: lbxdp attach IFACE)\n"
    )


def test_no_daemon_module(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # None in sys.modules makes the import raise ModuleNotFoundError(name='lb.daemon.client')
    monkeypatch.setitem(sys.modules, "lb.daemon.client", None)
    assert main(["-C"]) == 1
    assert "no lbxdp daemon is running" in capsys.readouterr().err


def test_restore_reads_stdin_and_sends_the_rules(daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = daemon(FakeDaemon())
    monkeypatch.setattr(sys, "stdin", io.StringIO(GOOD_RULES))
    assert main(["-R"]) == 0
    (request,) = fake.requests
    sent = request["command"]
    assert sent["verb"] == "RESTORE"
    assert [c["verb"] for c in sent["commands"]] == ["ADD_SERVICE", "ADD_REAL", "ADD_REAL", "ADD_SERVICE"]


def test_restore_with_a_bad_line_sends_nothing(daemon, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    fake = daemon(FakeDaemon())
    monkeypatch.setattr(sys, "stdin", io.StringIO("-A -t 10.0.0.1:80\n-L\n"))
    assert main(["-R"]) == 2
    assert fake.requests == []
    assert capsys.readouterr().err.startswith("lbxdp: <stdin>:2: '-L' cannot appear in a rules file")


def test_subcommand_missing_module(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(SUBCOMMANDS, "warp", ("lb.no_such_module:main", "test"))
    assert main(["warp", "x"]) == 1
    assert capsys.readouterr().err == "lbxdp: 'warp' is not available in this build\n"


def test_subcommand_is_loaded_lazily_and_gets_its_words(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    module = types.ModuleType("lbxdp_test_sub")
    module.main = lambda argv: seen.append(argv) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lbxdp_test_sub", module)
    monkeypatch.setitem(SUBCOMMANDS, "probe", ("lbxdp_test_sub:main", "test"))
    assert main(["probe", "eth0", "--mode", "generic"]) == 3
    assert seen == [["eth0", "--mode", "generic"]]


def test_subcommand_table_shape() -> None:
    for name, (target, summary) in SUBCOMMANDS.items():
        module, colon, func = target.partition(":")
        assert module and colon and func.isidentifier(), name
        assert summary
    for required in ("attach", "detach", "status", "config", "replay", "record", "verify", "experiment", "bench"):
        assert required in SUBCOMMANDS
