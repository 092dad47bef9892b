"""ipvsadm's commands (`Verb`), the switch that selects each, and which change the configuration."""

from __future__ import annotations

import enum


class Verb(enum.Enum):
    """ipvsadm's commands; the value is ipvsadm's own name for each, used in its messages."""

    ADD_SERVICE = "add-service"
    EDIT_SERVICE = "edit-service"
    DELETE_SERVICE = "delete-service"
    ADD_REAL = "add-server"
    EDIT_REAL = "edit-server"
    DELETE_REAL = "delete-server"
    CLEAR = "flush"
    RESTORE = "restore"
    SAVE = "save"
    LIST = "list"
    ZERO = "zero"
    SET = "set"

    @property
    def flag(self) -> str:
        """The switch that selects the command (`-A`, `--set`)."""
        return _VERB_FLAGS[self]

    @property
    def mutating(self) -> bool:
        """Changes the configuration (and so may appear in a rules file)."""
        return self in MUTATING_VERBS


_VERB_FLAGS = {
    Verb.ADD_SERVICE: "-A",
    Verb.EDIT_SERVICE: "-E",
    Verb.DELETE_SERVICE: "-D",
    Verb.ADD_REAL: "-a",
    Verb.EDIT_REAL: "-e",
    Verb.DELETE_REAL: "-d",
    Verb.CLEAR: "-C",
    Verb.RESTORE: "-R",
    Verb.SAVE: "-S",
    Verb.LIST: "-L",
    Verb.ZERO: "-Z",
    Verb.SET: "--set",
}
MUTATING_VERBS = frozenset(
    {
        Verb.ADD_SERVICE,
        Verb.EDIT_SERVICE,
        Verb.DELETE_SERVICE,
        Verb.ADD_REAL,
        Verb.EDIT_REAL,
        Verb.DELETE_REAL,
        Verb.CLEAR,
        Verb.SET,
    }
)
