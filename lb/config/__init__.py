"""ipvsadm's configuration language, pure: command lines, the service table they edit, and the save format.

`ipvsadm` parses one command line into a `Command`; `table` holds the configuration the daemon is the
authority on and applies commands to it with ipvsadm's semantics; `savefmt` writes and reads
`ipvsadm -S -n` rules files. Nothing here does I/O beyond what a caller hands in as text.
"""

from lb.config.ipvsadm import Command, Verb, parse_command
from lb.config.savefmt import RulesError, load_rules, parse_rules, save
from lb.config.table import Change, ServiceTable, Timeouts


def lbxdp_version() -> str:
    """The installed version (read from package metadata, so it works however lb was installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lbxdp")
    except PackageNotFoundError:
        return "0.0.0+unknown"


__all__ = [
    "Change",
    "Command",
    "RulesError",
    "ServiceTable",
    "Timeouts",
    "Verb",
    "lbxdp_version",
    "load_rules",
    "parse_command",
    "parse_rules",
    "save",
]
