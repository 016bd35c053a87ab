"""The authorization matrix: every RPC of every service against each kind of caller, rendered from
the policies declared on the servicers (``switchboard policies`` prints it; the README holds it and
a test keeps the two equal)."""

from __future__ import annotations

from collections.abc import Iterator

from switchboard.shared.authz import SIGNED_IN, Policy, Role, policy_of

COLUMNS = ("operator", "owner", "admin", "member", "worker of the agent", "worker of another agent")


def servicers() -> list[tuple[str, type]]:
    """(full service name, servicer class) of every service, in a stable order: as each declared
    Service lists them."""
    from switchboard.catalog import services

    return [servicer for service in services() for servicer in service.servicers]


def rpcs() -> Iterator[tuple[str, str, Policy | None]]:
    """(service, method, its policy) for every RPC in the protos."""
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    for service, servicer in servicers():
        for method in pool.FindServiceByName(service).methods:
            yield service, method.name, policy_of(getattr(servicer, method.name, None))


def cells(policy: Policy) -> list[str]:
    """What each kind of caller may do with one RPC: ✓, ✗, or ✓ with a condition."""
    def for_role(role: Role) -> str:
        if policy.user == SIGNED_IN:
            return "✓"
        return "✓" if policy.user is not None and role >= policy.user else "✗"

    own = "✗" if policy.worker is None else "✓"
    if policy.worker == "agent" or policy.stream:
        other = "✗"
    else:
        other = own
    return ["✓" if policy.operator else "✗", for_role(Role.OWNER), for_role(Role.ADMIN), for_role(Role.MEMBER), own, other]


def render() -> str:
    """The matrix as a Markdown table."""
    lines = ["| RPC | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for service, method, policy in rpcs():
        short = service.rsplit(".", 1)[1]
        row = cells(policy) if policy else ["✗"] * len(COLUMNS)
        lines.append(f"| {short}.{method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    print(render())
    return 0
