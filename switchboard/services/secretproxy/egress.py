"""Egress policy: which destinations an organisation's workers may reach.

A request is allowed when an allow rule matches it and no deny rule does (deny by default). Rules
are kept as plain dicts (the JSON stored in the database); a policy's hash is the SHA-256 of its
canonical JSON, so it changes whenever the rules do and keys the verdict cache: a changed policy
can never be answered from an old verdict, on any replica, because every request reads the
current hash first.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from switchboard.shared.validation import Violations

MAX_RULES = 500
NO_POLICY_HASH = hashlib.sha256(b"[]").hexdigest()
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_METHOD = re.compile(r"^[A-Z]{1,16}\Z")
# No request path holds these (a NUL cannot even be stored: the rules are jsonb); lone surrogates
# have no UTF-8 form.
_PATH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\ud800-\udfff]")

Rule = dict[str, Any]  # {"action": "allow"|"deny", "host": str, "methods": [str], "path_prefix": str}


def validate_rule(v: Violations, index: int, action: str | None, host: str, methods: Sequence[str], path_prefix: str) -> Rule:
    """One rule from its request fields; problems go to ``v`` under ``rules[index]``."""
    where = f"rules[{index}]"
    if action is None:
        v.add(f"{where}.action", "must be EGRESS_ACTION_ALLOW or EGRESS_ACTION_DENY")
    if not _valid_host_pattern(host):
        v.add(f"{where}.host_pattern", "must be a lowercase host name, or *. followed by one (at most 253 characters)")
    for j, method in enumerate(methods):
        if not _METHOD.match(method):
            v.add(f"{where}.methods[{j}]", "must be an uppercase HTTP method such as GET or POST")
    if path_prefix and (
        not path_prefix.startswith("/") or len(path_prefix) > 1024 or "?" in path_prefix or "#" in path_prefix
        or _PATH_FORBIDDEN.search(path_prefix)
    ):
        v.add(
            f"{where}.path_prefix",
            "must start with '/', hold no query, fragment, space or control character, and be at most 1024 characters",
        )
    return {"action": action, "host": host, "methods": sorted(set(methods)), "path_prefix": path_prefix.rstrip("/")}


def _valid_host_pattern(pattern: str) -> bool:
    host = pattern[2:] if pattern.startswith("*.") else pattern
    if not host or len(pattern) > 253:
        return False
    return all(_HOST_LABEL.match(label) for label in host.split("."))


def canonical(rules: Sequence[Rule]) -> list[Rule]:
    """Rules in a canonical order (order is irrelevant to the verdict, so not to the hash)."""
    return sorted(rules, key=lambda r: json.dumps(r, sort_keys=True))


def policy_hash(rules: Sequence[Rule]) -> str:
    return hashlib.sha256(json.dumps(canonical(rules), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _path_matches(prefix: str, path: str) -> bool:
    # Whole segments: "/v1" matches "/v1" and "/v1/chat", not "/v10".
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _matches(rule: Rule, host: str, method: str, path: str) -> bool:
    return (
        _host_matches(rule["host"], host)
        and (not rule["methods"] or method in rule["methods"])
        and _path_matches(rule["path_prefix"], path)
    )


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str  # "allowed_by_policy", "denied_by_rule", "not_allowed"


def evaluate(rules: Sequence[Rule], host: str, method: str, path: str) -> Verdict:
    """Deny rules win; then an allow rule must match; else deny (by default)."""
    allowed = False
    for rule in rules:
        if _matches(rule, host, method, path):
            if rule["action"] == "deny":
                return Verdict(False, "denied_by_rule")
            allowed = True
    return Verdict(True, "allowed_by_policy") if allowed else Verdict(False, "not_allowed")


def verdict_key(organization_id: str, policy_hash: str, host: str, method: str, path: str) -> tuple[str, str, str, str, bytes]:
    """The verdict cache's key. It holds the organisation and the policy hash, so one
    organisation's verdict never answers another's, nor an old policy a new one. Paths may be
    8 KiB long: the key holds a 128-bit digest of them (collision-resistant: two paths must never
    share a verdict), so the cache's memory stays bounded by its size."""
    return (organization_id, policy_hash, host, method, hashlib.blake2b(path.encode(), digest_size=16).digest())
