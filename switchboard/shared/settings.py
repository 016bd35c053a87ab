"""How settings are declared and read: typed, immutable dataclasses filled from environment
variables, each field naming its variable and its parser.

The platform's settings (switchboard/shared/config.py) and each service's own
(switchboard/services/<context>/settings.py) are declared with ``setting()`` on an ``EnvSettings``
dataclass, and read together by ``load()``, so that every problem of a process's environment is
reported at once in one ``ConfigError``: a value that does not parse, and a variable that no class
declares under a prefix one of them claims (a typo should stop the process at start, not be
silently ignored). A prefix other software shares (``SUPABASE_``) is claimed ``shared``: there only
a near miss of a declared name is an error.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

S = TypeVar("S", bound="EnvSettings")

NEAR_MISS = 2
"""Edits (insert, delete, replace, swap) that turn an unknown name into a declared one: a typo."""


class ConfigError(Exception):
    """The environment does not describe a valid configuration; the message lists every problem."""


@dataclass(frozen=True)
class Prefix:
    """Environment variables starting with ``text`` belong to Switchboard: an undeclared one is an
    error. ``shared``: other software uses the prefix too, so only a near miss is."""

    text: str
    shared: bool = False


def setting(
    env: str, parse: Callable[[str], Any], default: Any = None, *, secret: bool = False, aliases: tuple[str, ...] = ()
) -> Any:
    """A field read from the variable ``env`` with ``parse`` (which raises ValueError saying what
    it expected); ``None`` means unset. ``aliases``: older names of the same variable, still read
    (setting two of them to different values is an error). Secrets stay out of ``repr``."""
    return field(default=default, metadata={"env": env, "parse": parse, "aliases": aliases}, repr=not secret)


class EnvSettings:
    """Base of a settings dataclass: its fields are ``setting()``s; ``PREFIXES`` are the prefixes
    whose variables it declares (for the unknown-variable check)."""

    PREFIXES: ClassVar[tuple[Prefix, ...]] = ()

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Attribute name → environment variable name, for every setting of this class."""
        return {f.name: f.metadata["env"] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def known_names(cls) -> set[str]:
        """Every variable this class reads: the names and their aliases."""
        return {name for f in dataclasses.fields(cls) for name in (f.metadata["env"], *f.metadata["aliases"])}  # type: ignore[arg-type]

    def require(self, *names: str) -> None:
        """Fail with ConfigError naming the variable of every attribute in ``names`` that is unset."""
        env = self.env_names()
        missing = [env[name] for name in names if getattr(self, name) is None]
        if missing:
            raise ConfigError("required but not set: " + ", ".join(missing))


def load(environ: Mapping[str, str], classes: Iterable[type[EnvSettings]]) -> dict[type, Any]:
    """One instance of each settings class, read from ``environ``; raises one ConfigError listing
    every malformed value and every unknown variable under a claimed prefix. Empty values count as
    unset, as shells and compose files commonly write them."""
    classes = list(classes)
    problems: list[str] = []
    loaded: dict[type, Any] = {}
    for cls in classes:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            given = {n: environ[n] for n in (f.metadata["env"], *f.metadata["aliases"]) if environ.get(n)}
            if not given:
                continue
            name, raw = next(iter(given.items()))
            if len(set(given.values())) > 1:
                problems.append(f"{name}: set again, to another value, as {', '.join(list(given)[1:])}: set one")
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        loaded[cls] = values
    problems += unknown_variables(environ, classes)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return {cls: cls(**values) for cls, values in loaded.items()}


def unknown_variables(environ: Iterable[str], classes: Iterable[type[EnvSettings]]) -> list[str]:
    """A problem for each name under a claimed prefix that no class declares, with the declared
    name it most likely misspells."""
    classes = list(classes)
    known = {name for cls in classes for name in cls.known_names()}
    prefixes = {prefix for cls in classes for prefix in cls.PREFIXES}
    problems = []
    for name in sorted(environ):
        claims = [prefix for prefix in prefixes if name.startswith(prefix.text)]
        if name in known or not claims:
            continue
        guess = closest(name, known)
        if guess is None and all(prefix.shared for prefix in claims):
            continue  # another program's variable under a prefix we share
        hint = f"did you mean {guess}?" if guess else "see the README's configuration table"
        problems.append(f"{name}: unknown setting ({hint})")
    return problems


def closest(name: str, known: Iterable[str]) -> str | None:
    """The declared name within NEAR_MISS edits of ``name`` (the nearest; None when none is)."""
    best: tuple[int, str] | None = None
    for candidate in known:
        distance = edit_distance(name, candidate, NEAR_MISS)
        if distance <= NEAR_MISS and (best is None or (distance, candidate) < best):
            best = (distance, candidate)
    return best[1] if best else None


def edit_distance(a: str, b: str, bound: int) -> int:
    """Edits (insert, delete, replace, swap of neighbours) from ``a`` to ``b``; anything above
    ``bound`` is reported as ``bound + 1`` (names are short, but there are many to compare)."""
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > bound:
            return bound + 1
        previous2, previous = previous, current
    return min(previous[len(b)], bound + 1)


# Parsers: each returns the typed value or raises ValueError saying what it expected.

# What a number in a setting looks like: ASCII digits only. int() and float() also take "1_000",
# "٣" (any Unicode digit) and, for float(), "nan" and "infinity": a value nobody means to write.
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,18}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})(?:[eE][+-]?[0-9]{1,3})?")


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not _INTEGER.fullmatch(raw.strip()):
            raise ValueError(f"expected an integer, got {raw!r}")
        value = int(raw.strip())
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        if not _DECIMAL.fullmatch(raw.strip()):
            raise ValueError(f"expected a number of seconds, got {raw!r}")
        value = float(raw.strip())
        if not low <= value <= high:
            raise ValueError(f"expected seconds from {low:g} to {high:g}, got {value:g}")
        return value

    return parse


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def secret(min_length: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if len(value) < min_length:
            # Never echo the value: it is a secret, and error messages end up in logs.
            raise ValueError(f"must be at least {min_length} characters long")
        return value

    return parse


def http_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {raw!r}")
    return value


def domain(raw: str) -> str:
    value = raw.strip().lower()
    if not value or not all(part and part.replace("-", "").isalnum() for part in value.split(".")):
        raise ValueError(f"expected a domain name, got {raw!r}")
    return value


PORT = integer(0, 65535)
