"""Organisation slugs: derived from a name, unique, never a reserved word."""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 48
SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?\Z")
# Words that name parts of the product or its URLs; an organisation called "Admin" gets "admin-2".
RESERVED = frozenset(
    {
        "admin", "administrator", "api", "app", "auth", "billing", "blog", "dashboard", "docs", "help",
        "internal", "login", "logout", "me", "new", "org", "organizations", "root", "settings", "signup",
        "static", "status", "support", "switchboard", "system", "www",
    }
)  # fmt: skip


def slug_base(name: str) -> str:
    """The slug a name suggests: ASCII, lower case, words joined by hyphens (``Zoë Doe`` → ``zoe-doe``)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    base = base[: MAX_LENGTH - 6].strip("-")  # room for a "-NNNNN" suffix
    return base or "org"


def next_free_slug(base: str, taken: list[str]) -> str:
    """``base`` itself when free and not reserved, else ``base-N`` with the smallest N ≥ 2 above
    every suffix in use (so that concurrent creators collide rarely and retry once)."""
    if base not in taken and base not in RESERVED:
        return base
    suffixes = [int(slug.rsplit("-", 1)[1]) for slug in taken if slug != base and slug.rsplit("-", 1)[1].isdigit()]
    return f"{base}-{max([1, *suffixes]) + 1}"


def slug_problem(slug: str) -> str | None:
    """Why ``slug`` cannot be chosen explicitly, or None when it can."""
    if not SLUG_PATTERN.match(slug):
        return "must be 1 to 48 lower-case letters, digits or inner hyphens"
    if slug in RESERVED:
        return "is a reserved word"
    return None
