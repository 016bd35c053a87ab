"""Rows of the identity schema as protobuf messages, and enum mappings."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from services.identity.store import Record
from switchboard.identity.v1 import resources_pb2

ROLE_TO_PROTO = {"owner": resources_pb2.ROLE_OWNER, "admin": resources_pb2.ROLE_ADMIN, "member": resources_pb2.ROLE_MEMBER}
ROLE_FROM_PROTO = {value: key for key, value in ROLE_TO_PROTO.items()}
VISIBILITY_FROM_PROTO = {
    resources_pb2.VISIBILITY_UNSPECIFIED: "private",
    resources_pb2.VISIBILITY_PRIVATE: "private",
    resources_pb2.VISIBILITY_PUBLIC: "public",
}
VISIBILITY_TO_PROTO = {"private": resources_pb2.VISIBILITY_PRIVATE, "public": resources_pb2.VISIBILITY_PUBLIC}


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


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
        created_at=timestamp(row["created_at"]),
        updated_at=timestamp(row["updated_at"]),
    )
