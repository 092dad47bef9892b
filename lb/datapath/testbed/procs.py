"""Programs run inside namespaces: `ip netns exec NS argv…`, tracked so teardown can end them.

Each background process starts in its own session (so its own process group): killing the group
takes its children with it (a shell, nginx's workers, wrk's threads are one kill away).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# The directory that holds the `lb` package: servers started in namespaces import it from here,
# whether or not the project is installed in the interpreter.
PROJECT_ROOT = str(Path(__file__).resolve().parents[3])


def ns_argv(netns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = PROJECT_ROOT if not path else f"{PROJECT_ROOT}{os.pathsep}{path}"
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def python_argv(module: str, *args: str) -> list[str]:
    """argv running `python -m module args…` with this interpreter (the project venv)."""
    return [sys.executable, "-m", module, *args]


class ProcessSet:
    """Background processes of one topology, ended (group and all) by `stop_all`."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        netns: str,
        argv: Sequence[str],
        *,
        stdout: int | object = subprocess.DEVNULL,
        stderr: int | object = subprocess.DEVNULL,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ns_argv(netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,  # type: ignore[arg-type]
            stderr=stderr,  # type: ignore[arg-type]
            env=child_env(env),
            cwd=cwd,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    @property
    def procs(self) -> tuple[subprocess.Popen[bytes], ...]:
        return tuple(self._procs)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 1.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds; returns the exit code."""
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
        else:
            # The leader is gone but its group may not be (a daemon it left behind).
            _signal_group(proc.pid, signal.SIGKILL)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        return proc.returncode

    def stop_all(self, grace: float = 1.0) -> None:
        live = [p for p in self._procs if p.poll() is None]
        for proc in live:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in live:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self._procs:
            self.stop(proc, grace=0.5)
        self._procs.clear()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run(
    netns: str,
    argv: Sequence[str],
    *,
    timeout: float = 10.0,
    check: bool = True,
    input: str | None = None,  # noqa: A002 (subprocess's name)
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv in `netns` to completion (bounded by `timeout`), capturing text output.

    Output goes through temporary files, not pipes: a command that leaves a daemon behind (the
    daemon inherits the descriptors) still returns when the command itself exits. On timeout the
    whole process group is killed. On a non-zero exit with `check`, raises CommandFailed whose
    message includes stderr, so a failing test says why rather than just "exit status 1".
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ns_argv(netns, argv),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=child_env(env),
            cwd=cwd,
            start_new_session=True,
        )
        try:
            if input is not None:
                assert proc.stdin is not None
                try:
                    proc.stdin.write(input.encode())
                finally:
                    proc.stdin.close()
            proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TimeoutError(f"{' '.join(argv)} in {netns} took longer than {timeout:.1f}s") from exc
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(list(argv), proc.returncode,
                                           out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))
    if check and done.returncode != 0:
        raise CommandFailed(netns, list(argv), done.returncode, done.stdout, done.stderr)
    return done


class CommandFailed(subprocess.CalledProcessError):
    def __init__(self, netns: str, argv: list[str], code: int, out: str, err: str) -> None:
        super().__init__(code, argv, out, err)
        self.netns = netns

    def __str__(self) -> str:
        tail = (self.stderr or self.stdout or "").strip().splitlines()[-3:]
        return f"{' '.join(self.cmd)} in {self.netns} exited {self.returncode}: {' | '.join(tail)}"
