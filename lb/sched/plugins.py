"""Finding third-party schedulers: Python entry points and `module:Class` / `file.py:Class` specs.

Every failure becomes one ConfigError line naming the spec and the reason, never a traceback:
a researcher mistyping a path must see what to fix.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from lb.model import ConfigError
from lb.sched.base import Scheduler

ENTRY_POINT_GROUP = "lbxdp.schedulers"


def load_spec(spec: str) -> type[Scheduler]:
    """The Scheduler class named by `module.path:Class` or `path/to/file.py:Class`."""
    target, sep, attr = spec.strip().rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"scheduler plugin {spec!r}: expected 'module:Class' or 'path/file.py:Class'")
    if target.endswith(".py") or "/" in target:
        module = _import_file(spec, Path(target))
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's, report it
            raise ConfigError(f"scheduler plugin {spec!r}: cannot import {target}: {_one_line(exc)}") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise ConfigError(f"scheduler plugin {spec!r}: {target} has no attribute {attr!r}")
    return _checked(spec, cls)


@functools.lru_cache(maxsize=1)
def entry_point_names() -> list[str]:
    """Names declared in the `lbxdp.schedulers` entry-point group of installed packages.

    Cached: scanning every installed distribution costs milliseconds, and validating a rules file
    asks once per line (a 1000-service restore would spend seconds here). Packages installed while
    a process runs are not seen by it, as with any entry point.
    """
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


def load_entry_point(name: str) -> type[Scheduler] | None:
    """The class behind entry point `name`, or None when no installed package declares it."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"scheduler entry point {name!r} ({ep.value}): {_one_line(exc)}") from None
        checked = _checked(f"entry point {name}={ep.value}", cls)
        if checked.name != name:
            raise ConfigError(
                f"scheduler entry point {name!r} ({ep.value}) names a class whose name is {checked.name!r}"
            )
        return checked
    return None


def _import_file(spec: str, path: Path) -> object:
    if not path.is_file():
        raise ConfigError(f"scheduler plugin {spec!r}: no such file {path}")
    resolved = path.resolve()
    # One module per file, named after its path, so loading the same file twice reuses it.
    mod_name = "lbxdp_plugin_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    loader_spec = importlib.util.spec_from_file_location(mod_name, resolved)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"scheduler plugin {spec!r}: {path} is not a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001
        del sys.modules[mod_name]
        raise ConfigError(f"scheduler plugin {spec!r}: {path} failed to load: {_one_line(exc)}") from None
    return module


def _checked(what: str, cls: object) -> type[Scheduler]:
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise ConfigError(f"scheduler plugin {what!r}: {cls!r} is not a subclass of lb.sched.base.Scheduler")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise ConfigError(f"scheduler plugin {what!r}: {cls.__qualname__} does not set `name`")
    return cls


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
