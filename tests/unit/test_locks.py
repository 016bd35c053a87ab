"""The advisory-lock registry (switchboard/shared/locks.py): every key distinct, and every lock the code takes
is one of its keys (no key defined or hashed anywhere else)."""

from __future__ import annotations

import re
from pathlib import Path

from switchboard.shared import locks

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for p in (ROOT / "switchboard").rglob("*.py") if "_pb2" not in p.name]
# A statement that takes or releases an advisory lock, and the Python expression that follows it.
LOCK_CALL = re.compile(r'"SELECT (pg_\w*advisory\w*)\(([^)]*)\)"\s*,\s*([\w.]+)')


def test_every_key_is_distinct_and_a_bigint():
    assert len(set(locks.KEYS.values())) == len(locks.KEYS)
    assert all(-(2**63) <= key < 2**63 for key in locks.KEYS.values())
    assert locks.KEYS == {name: getattr(locks, name) for name in dir(locks) if name.isupper() and name != "KEYS"}


def test_every_lock_taken_in_the_code_is_a_registered_key():
    taken = []
    for path in SOURCES:
        text = path.read_text()
        if path != ROOT / "switchboard" / "shared" / "locks.py":
            assert "hashtext(" not in text, f"{path}: a lock key hashed in place; register it in switchboard/shared/locks.py"
            assert not re.search(r"^\w*LOCK_KEY\w* =", text, re.M), f"{path}: a lock key outside switchboard/shared/locks.py"
        for function, argument, key in LOCK_CALL.findall(text):
            assert argument == "$1", f"{path}: {function}({argument}) does not take its key as a parameter"
            assert key.startswith("locks.") and key.removeprefix("locks.") in locks.KEYS, f"{path}: {function} with {key}"
            taken.append(key.removeprefix("locks."))
    assert set(taken) == set(locks.KEYS)  # and no registered key is left unused
