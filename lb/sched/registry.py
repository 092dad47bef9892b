"""The scheduler registry: names to classes, as ipvsadm's `-s` names them (sshuttle's get_method()).

Each scheduler module registers its class here with `@register`; lb.sched imports the built-ins, so
the registry knows them whenever lb.sched is imported, and plugins join on demand (lb.sched's
docstring says how). The registry imports no scheduler: they import it.
"""

from __future__ import annotations

import inspect
import os

from lb.model import ConfigError
from lb.sched.base import Scheduler

ENV_VAR = "LBXDP_SCHEDULERS"

_registry: dict[str, type[Scheduler]] = {}
_env_loaded = False


def register(cls: type[Scheduler]) -> type[Scheduler]:
    """Class decorator: make `cls` available under `cls.name`.

    Registering the same class twice is harmless; a second class under a taken name is refused,
    so a plugin cannot silently replace a built-in.
    """
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise ConfigError(f"{cls!r} is not a Scheduler subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"scheduler class {cls.__qualname__} has no `name`")
    taken = _registry.get(name)
    if taken is not None and taken is not cls and not _same_definition(taken, cls):
        raise ConfigError(
            f"scheduler name {name!r} is already taken by {taken.__module__}.{taken.__qualname__}"
        )
    _registry[name] = cls
    return cls


def _same_definition(a: type, b: type) -> bool:
    """One class loaded twice (a plugin file named by two specs) is the same scheduler, not a clash."""
    try:
        return a.__qualname__ == b.__qualname__ and inspect.getsourcefile(a) == inspect.getsourcefile(b)
    except TypeError:
        return False


def load_plugin(spec: str) -> type[Scheduler]:
    """Import a scheduler from `module:Class` or `path/to/file.py:Class` and register it."""
    import lb.sched.plugins as plugins

    return register(plugins.load_spec(spec))


def scheduler_names() -> list[str]:
    """Every name `get_scheduler` accepts: built-ins, loaded plugins and installed entry points."""
    import lb.sched.plugins as plugins

    _load_env_plugins()
    return sorted(set(_registry) | set(plugins.entry_point_names()))


def scheduler_class(name: str) -> type[Scheduler]:
    """The class registered as `name`; ConfigError naming the known schedulers when there is none."""
    import lb.sched.plugins as plugins

    _load_env_plugins()
    cls = _registry.get(name)
    if cls is not None:
        return cls
    found = plugins.load_entry_point(name)
    if found is not None:
        return register(found)
    raise ConfigError(f"unknown scheduler {name!r} (known: {', '.join(scheduler_names())})")


def get_scheduler(name: str, flags: frozenset[str] = frozenset()) -> Scheduler:
    """A new scheduler instance; bad names and flags raise ConfigError with a one-line reason."""
    cls = scheduler_class(name)
    try:
        return cls(frozenset(flags))
    except ConfigError:
        raise
    except ValueError as exc:  # Scheduler.__init__ rejects flags with ValueError
        raise ConfigError(str(exc)) from None
    except TypeError as exc:  # e.g. a plugin that left schedule() abstract
        raise ConfigError(f"scheduler {name!r} cannot be created: {exc}") from None


def _load_env_plugins() -> None:
    global _env_loaded
    if _env_loaded:
        return
    _env_loaded = True
    for spec in os.environ.get(ENV_VAR, "").split(","):
        if spec.strip():
            try:
                load_plugin(spec.strip())
            except ConfigError as exc:
                raise ConfigError(f"{ENV_VAR}: {exc}") from None


def builtin_schedulers() -> tuple[type[Scheduler], ...]:
    """The schedulers lbxdp ships, in the order lb.sched registers them (ipvsadm(8)'s order), without
    plugins: what help texts and ipvsadm's own flag names are derived from."""
    return tuple(cls for cls in _registry.values() if cls.__module__.startswith(f"{__package__}."))
