"""Rows of the identity schema as protobuf messages, and enum mappings."""

from __future__ import annotations

from switchboard.services.identity.store import Record
from switchboard.shared.messages import timestamp  # noqa: F401 - also convert.timestamp for the servicers
from switchboard.identity.v1 import agent_service_pb2, resources_pb2

ROLE_TO_PROTO = {"owner": resources_pb2.ROLE_OWNER, "admin": resources_pb2.ROLE_ADMIN, "member": resources_pb2.ROLE_MEMBER}
ROLE_FROM_PROTO = {value: key for key, value in ROLE_TO_PROTO.items()}
VISIBILITY_FROM_PROTO = {
    resources_pb2.VISIBILITY_UNSPECIFIED: "private",
    resources_pb2.VISIBILITY_PRIVATE: "private",
    resources_pb2.VISIBILITY_PUBLIC: "public",
}
VISIBILITY_TO_PROTO = {"private": resources_pb2.VISIBILITY_PRIVATE, "public": resources_pb2.VISIBILITY_PUBLIC}


def user(row: Record) -> resources_pb2.User:
    return resources_pb2.User(
        id=str(row["id"]), email=row["email"], display_name=row["display_name"], created_at=timestamp(row["created_at"])
    )


def organization(row: Record) -> resources_pb2.Organization:
    return resources_pb2.Organization(
        id=str(row["id"]),
        name=row["name"],
        slug=row["slug"],
        visibility=VISIBILITY_TO_PROTO[row["visibility"]],
        personal=row["personal"],
        created_at=timestamp(row["created_at"]),
    )


def membership(row: Record) -> resources_pb2.Membership:
    return resources_pb2.Membership(
        organization_id=str(row["organization_id"]),
        user_id=str(row["user_id"]),
        role=ROLE_TO_PROTO[row["role"]],
        is_bot=row["is_bot"],
        created_at=timestamp(row["created_at"]),
        updated_at=timestamp(row["updated_at"]),
    )


def agent(row: Record) -> resources_pb2.Agent:
    return resources_pb2.Agent(
        id=str(row["id"]),
        organization_id=str(row["organization_id"]),
        name=row["name"],
        template_agent_id=str(row["template_agent_id"] or ""),
        source_organization_id=str(row["source_organization_id"] or ""),
        created_at=timestamp(row["created_at"]),
        updated_at=timestamp(row["updated_at"]),
    )


# -- agent schema objects ----------------------------------------------------------------------

STATUS_TO_PROTO = {"active": agent_service_pb2.SCHEMA_OBJECT_STATUS_ACTIVE, "archived": agent_service_pb2.SCHEMA_OBJECT_STATUS_ARCHIVED}


def provenance(row: Record, prefix: str = "") -> agent_service_pb2.Provenance | None:
    if row[f"{prefix}template_agent_id"] is None:
        return None
    return agent_service_pb2.Provenance(
        template_agent_id=str(row[f"{prefix}template_agent_id"]),
        source_organization_id=str(row[f"{prefix}source_organization_id"]),
        source_object_id=str(row[f"{prefix}source_object_id"]),
    )


def _common(row: Record) -> dict:
    return {
        "id": str(row["id"]),
        "organization_id": str(row["organization_id"]),
        "agent_id": str(row["agent_id"]),
        "slug": row["slug"],
        "name": row["name"],
        "status": STATUS_TO_PROTO[row["status"]],
        "provenance": provenance(row),
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
    }


def entity_type(row: Record) -> agent_service_pb2.EntityType:
    return agent_service_pb2.EntityType(**_common(row), description=row["description"], schema_json=row["schema_json"])


def relationship_type(row: Record) -> agent_service_pb2.RelationshipType:
    return agent_service_pb2.RelationshipType(**_common(row), description=row["description"], schema_json=row["schema_json"])


def watcher_version(row: Record, prefix: str = "") -> agent_service_pb2.WatcherVersion:
    return agent_service_pb2.WatcherVersion(
        id=str(row[f"{prefix}id"]),
        watcher_id=str(row["watcher_id"] if not prefix else row["id"]),
        version=row[f"{prefix}version"],
        prompt=row[f"{prefix}prompt"],
        schema_json=row[f"{prefix}schema_json"],
        reaction_script=row[f"{prefix}reaction_script"],
        provenance=provenance(row, prefix),
        created_at=timestamp(row[f"{prefix}created_at"]),
    )


def watcher(row: Record) -> agent_service_pb2.Watcher:
    current = watcher_version(row, "v_") if row["v_id"] is not None else None
    return agent_service_pb2.Watcher(**_common(row), current_version=current)


def event_classifier(row: Record) -> agent_service_pb2.EventClassifier:
    return agent_service_pb2.EventClassifier(
        **_common(row),
        description=row["description"],
        watcher_id=str(row["watcher_id"] or ""),
        definition_json=row["definition_json"],
    )
