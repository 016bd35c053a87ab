"""The egress evaluator: as documented on EgressPolicy and EgressRule in the proto, a request is
allowed when at least one allow rule matches and no deny rule does; anything else is denied (deny
by default); rule order is irrelevant. A rule matches when its host pattern (exact, or ``*.`` for
subdomains only), its methods (empty: every method) and its path prefix (whole segments; empty:
every path) all match."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.services.secretproxy import egress
from switchboard.shared.validation import Violations

FAST = settings(max_examples=75, derandomize=True, database=None, deadline=None)

# Small pools, so that generated rules and requests meet often, near misses included
# ("badexample.com" against "*.example.com", "/v10" against "/v1").
HOSTS = ["example.com", "api.example.com", "a.b.example.com", "badexample.com", "example.com.evil.net", "example.org", "127.0.0.1"]
SEGMENTS = ["v1", "v10", "v", "chat", "admin", "%2e", "a.b"]
METHODS = ["GET", "POST", "PUT", "DELETE"]

hosts = st.sampled_from(HOSTS)
host_patterns = st.one_of(hosts, hosts.map(lambda h: "*." + h), st.sampled_from(["*.com", "*.b.example.com"]))
paths = st.lists(st.sampled_from(SEGMENTS), max_size=4).map(lambda s: "/" + "/".join(s)) | st.just("/v1/")
path_prefixes = st.one_of(st.just(""), st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map(lambda s: "/" + "/".join(s)))


@st.composite
def rules(draw) -> egress.Rule:
    """A rule as stored: built by validate_rule from request fields that pass it."""
    v = Violations()
    rule = egress.validate_rule(
        v,
        0,
        draw(st.sampled_from(["allow", "deny"])),
        draw(host_patterns),
        draw(st.lists(st.sampled_from(METHODS), max_size=2)),
        draw(path_prefixes) + draw(st.sampled_from(["", "/"])),
    )
    assert not v.items, v.items
    return rule


policies = st.lists(rules(), max_size=6)


def host_matches(pattern: str, host: str) -> bool:
    """The documented host rule, on labels: ``*.x`` is any host with more labels ending in x's."""
    if pattern.startswith("*."):
        suffix, labels = pattern[2:].split("."), host.split(".")
        return len(labels) > len(suffix) and labels[-len(suffix) :] == suffix
    return host == pattern


def path_matches(prefix: str, path: str) -> bool:
    """The documented path rule, on segments: the prefix's segments begin the path's."""
    wanted = prefix.rstrip("/").split("/")[1:] if prefix.rstrip("/") else []
    return path.split("/")[1:][: len(wanted)] == wanted


def reference(policy: list[egress.Rule], host: str, method: str, path: str) -> egress.Verdict:
    matching = [
        r["action"]
        for r in policy
        if host_matches(r["host"], host) and (not r["methods"] or method in r["methods"]) and path_matches(r["path_prefix"], path)
    ]
    if "deny" in matching:
        return egress.Verdict(False, "denied_by_rule")
    if "allow" in matching:
        return egress.Verdict(True, "allowed_by_policy")
    return egress.Verdict(False, "not_allowed")


@FAST
@given(policies, hosts, st.sampled_from(METHODS), paths)
def test_the_verdict_is_the_documented_one(policy, host, method, path):
    assert egress.evaluate(policy, host, method, path) == reference(policy, host, method, path)


@FAST
@given(policies, hosts, st.sampled_from(METHODS), paths, st.randoms(use_true_random=False))
def test_the_order_of_rules_is_irrelevant(policy, host, method, path, rng: random.Random):
    shuffled = list(policy)
    rng.shuffle(shuffled)
    assert egress.evaluate(shuffled, host, method, path) == egress.evaluate(policy, host, method, path)
    assert egress.policy_hash(shuffled) == egress.policy_hash(policy)


@FAST
@given(policies, hosts, st.sampled_from(METHODS), paths)
def test_a_matching_deny_rule_beats_any_allow_rule(policy, host, method, path):
    deny = {"action": "deny", "host": host, "methods": [method], "path_prefix": path.rstrip("/")}
    allow_everything = {"action": "allow", "host": host, "methods": [], "path_prefix": ""}
    assert egress.evaluate([*policy, allow_everything, deny], host, method, path) == egress.Verdict(False, "denied_by_rule")


@FAST
@given(policies, hosts, st.sampled_from(METHODS), paths)
def test_without_a_matching_allow_rule_everything_is_denied(policy, host, method, path):
    denies_only = [r for r in policy if r["action"] == "deny"]
    assert not egress.evaluate(denies_only, host, method, path).allowed
    assert egress.evaluate([], host, method, path) == egress.Verdict(False, "not_allowed")


def allow(host: str, methods: list[str] | None = None, path_prefix: str = "") -> egress.Rule:
    return {"action": "allow", "host": host, "methods": methods or [], "path_prefix": path_prefix}


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("api.example.com", "api.example.com", True),
        ("api.example.com", "example.com", False),
        ("api.example.com", "xapi.example.com", False),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),  # the wildcard is for subdomains only
        ("*.example.com", "badexample.com", False),  # not a subdomain, only a longer name
        ("*.example.com", "example.com.evil.net", False),
        ("*.example.com", ".example.com", False),
        ("example.com", "EXAMPLE.COM", False),  # patterns are lowercase; so are upstream hosts
    ],
)
def test_host_patterns(pattern: str, host: str, matches: bool):
    assert egress.evaluate([allow(pattern)], host, "GET", "/").allowed is matches


@pytest.mark.parametrize(
    ("prefix", "path", "matches"),
    [
        ("/v1", "/v1", True),
        ("/v1", "/v1/", True),
        ("/v1", "/v1/chat/completions", True),
        ("/v1", "/v10", False),
        ("/v1", "/v1.json", False),
        ("/v1", "/", False),
        ("/v1/chat", "/v1", False),
        ("/v1", "/V1", False),
        ("", "/anything/at/all", True),
    ],
)
def test_path_prefixes_match_whole_segments(prefix: str, path: str, matches: bool):
    assert egress.evaluate([allow("api.example.com", path_prefix=prefix)], "api.example.com", "GET", path).allowed is matches


def test_a_rules_methods_limit_it_and_no_methods_means_every_method():
    rule = allow("api.example.com", ["GET", "HEAD"])
    assert egress.evaluate([rule], "api.example.com", "GET", "/").allowed
    assert not egress.evaluate([rule], "api.example.com", "POST", "/").allowed
    assert not egress.evaluate([rule], "api.example.com", "get", "/").allowed
    assert egress.evaluate([allow("api.example.com")], "api.example.com", "PATCH", "/").allowed


def test_a_deny_rule_on_a_path_leaves_the_rest_of_the_host_allowed():
    policy = [allow("api.example.com"), {"action": "deny", "host": "api.example.com", "methods": ["DELETE"], "path_prefix": "/v1/admin"}]
    assert egress.evaluate(policy, "api.example.com", "DELETE", "/v1/admin/users") == egress.Verdict(False, "denied_by_rule")
    assert egress.evaluate(policy, "api.example.com", "GET", "/v1/admin/users").allowed
    assert egress.evaluate(policy, "api.example.com", "DELETE", "/v1/administrators").allowed
    assert egress.evaluate(policy, "other.example.com", "GET", "/") == egress.Verdict(False, "not_allowed")


def test_validate_rule_stores_a_canonical_rule():
    v = Violations()
    rule = egress.validate_rule(v, 0, "allow", "*.example.com", ["POST", "GET", "GET"], "/v1/")
    assert not v.items
    assert rule == {"action": "allow", "host": "*.example.com", "methods": ["GET", "POST"], "path_prefix": "/v1"}
    assert egress.validate_rule(v, 0, "deny", "example.com", [], "/")["path_prefix"] == ""


@pytest.mark.parametrize(
    ("host", "methods", "path_prefix", "field"),
    [
        ("Example.com", [], "", "rules[3].host_pattern"),
        ("", [], "", "rules[3].host_pattern"),
        ("*.", [], "", "rules[3].host_pattern"),
        ("a.*.example.com", [], "", "rules[3].host_pattern"),
        ("-a.example.com", [], "", "rules[3].host_pattern"),
        ("example.com:443", [], "", "rules[3].host_pattern"),
        ("x" * 64 + ".com", [], "", "rules[3].host_pattern"),
        (("a." * 127) + "com", [], "", "rules[3].host_pattern"),  # 257 characters
        ("example.com", ["get"], "", "rules[3].methods[0]"),
        ("example.com", ["GET", "G ET"], "", "rules[3].methods[1]"),
        ("example.com", [], "v1", "rules[3].path_prefix"),
        ("example.com", [], "/v1?x=1", "rules[3].path_prefix"),
        ("example.com", [], "/v1#x", "rules[3].path_prefix"),
        ("example.com", [], "/v 1", "rules[3].path_prefix"),
        ("example.com", [], "/v1\x00", "rules[3].path_prefix"),
        ("example.com", [], "/\ud800", "rules[3].path_prefix"),
        ("example.com", [], "/" + "a" * 1024, "rules[3].path_prefix"),
    ],
)
def test_validate_rule_names_the_bad_field(host: str, methods: list[str], path_prefix: str, field: str):
    v = Violations()
    egress.validate_rule(v, 3, "allow", host, methods, path_prefix)
    assert [item.field for item in v.items] == [field]


def test_a_rule_without_an_action_is_refused():
    v = Violations()
    egress.validate_rule(v, 0, None, "example.com", [], "")
    assert [item.field for item in v.items] == ["rules[0].action"]


def test_two_paths_never_share_a_verdict():
    key = egress.verdict_key("org", "hash", "h", "GET", "/v1/a")
    assert key != egress.verdict_key("org", "hash", "h", "GET", "/v1/b")
    assert key != egress.verdict_key("org", "other", "h", "GET", "/v1/a")
    assert key != egress.verdict_key("other", "hash", "h", "GET", "/v1/a")
    assert key != egress.verdict_key("org", "hash", "h", "POST", "/v1/a")
    assert len(egress.verdict_key("org", "hash", "h", "GET", "/" + "a" * 8192)[-1]) == 16  # bounded
