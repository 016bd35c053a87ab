"""Slug derivation: readable, unique, never reserved."""

from switchboard.services.identity.slugs import next_free_slug, slug_base, slug_problem


def test_slugs_come_from_names():
    assert slug_base("Zoe Doe") == "zoe-doe"
    assert slug_base("  Ünïcödé — Org!! ") == "unicode-org"
    assert slug_base("***") == "org"
    assert len(slug_base("x" * 200)) <= 42


def test_the_next_free_slug_counts_past_every_suffix_in_use():
    assert next_free_slug("zoe-doe", []) == "zoe-doe"
    assert next_free_slug("zoe-doe", ["zoe-doe"]) == "zoe-doe-2"
    assert next_free_slug("zoe-doe", ["zoe-doe", "zoe-doe-2", "zoe-doe-7"]) == "zoe-doe-8"
    assert next_free_slug("admin", []) == "admin-2"


def test_explicit_slugs_are_checked():
    assert slug_problem("acme") is None
    assert slug_problem("Acme") is not None
    assert slug_problem("-acme") is not None
    assert slug_problem("admin") == "is a reserved word"
