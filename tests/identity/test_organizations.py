"""Sign-up, organisations and memberships: idempotence under concurrency, slugs, roles, the last
owner, tenant isolation and bad input."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from switchboard.shared.errors import field_violations
from switchboard.identity.v1 import identity_service_pb2 as pb
from switchboard.identity.v1 import resources_pb2 as res
from tests.identity.conftest import OPERATOR, as_user


async def expect(code: grpc.StatusCode, call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def test_sign_up_makes_a_user_who_owns_a_private_personal_organisation(identity):
    reply = await identity.sign_up("Zoe Doe", "Zoe@Example.com ")
    assert reply.created and reply.user.email == "zoe@example.com"
    assert reply.organization.slug == "zoe-doe" and reply.organization.personal
    assert reply.organization.visibility == res.VISIBILITY_PRIVATE
    members = await identity.stub.ListMembers(pb.ListMembersRequest(organization_id=reply.organization.id), metadata=OPERATOR)
    assert [(m.user_id, m.role) for m in members.memberships] == [(reply.user.id, res.ROLE_OWNER)]


async def test_twenty_concurrent_sign_ups_of_one_email_make_one_user_and_one_organisation(identity):
    replies = await asyncio.gather(*(identity.sign_up("Zoe Doe", "zoe@example.com") for _ in range(20)))
    assert len({r.user.id for r in replies}) == 1 and len({r.organization.id for r in replies}) == 1
    assert sum(r.created for r in replies) == 1
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.users") == 1
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.organizations") == 1
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.memberships") == 1


async def test_slugs_are_unique_and_reserved_words_get_a_suffix(identity):
    slugs = [(await identity.sign_up("Zoe Doe")).organization.slug for _ in range(3)]
    assert slugs == ["zoe-doe", "zoe-doe-2", "zoe-doe-3"]
    assert (await identity.sign_up("Admin")).organization.slug == "admin-2"
    assert (await identity.sign_up("Zoë  Dœ!!")).organization.slug == "zoe-d"


async def test_concurrent_sign_ups_with_one_name_get_distinct_slugs(identity):
    replies = await asyncio.gather(*(identity.sign_up("Same Name") for _ in range(10)))
    assert sorted(r.organization.slug for r in replies) == sorted(["same-name", *(f"same-name-{i}" for i in range(2, 11))])


async def test_create_organization_makes_the_acting_user_owner(identity):
    user = (await identity.sign_up()).user.id
    created = await identity.stub.CreateOrganization(
        pb.CreateOrganizationRequest(name="Acme", slug="acme", visibility=res.VISIBILITY_PUBLIC), metadata=as_user(user)
    )
    assert created.organization.slug == "acme" and not created.organization.personal
    members = await identity.stub.ListMembers(pb.ListMembersRequest(organization_id=created.organization.id), metadata=as_user(user))
    assert [(m.user_id, m.role) for m in members.memberships] == [(user, res.ROLE_OWNER)]
    taken = await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        identity.stub.CreateOrganization(pb.CreateOrganizationRequest(name="Acme 2", slug="acme"), metadata=as_user(user)),
    )
    assert "acme" in taken.details()
    await expect(grpc.StatusCode.UNAUTHENTICATED, identity.stub.CreateOrganization(pb.CreateOrganizationRequest(name="X"), metadata=OPERATOR))


async def test_private_organisations_are_invisible_to_strangers_public_ones_are_not(identity):
    owner = (await identity.sign_up()).user.id
    stranger = (await identity.sign_up("Stranger")).user.id
    private = (await identity.stub.CreateOrganization(pb.CreateOrganizationRequest(name="Hidden"), metadata=as_user(owner))).organization
    public = (
        await identity.stub.CreateOrganization(
            pb.CreateOrganizationRequest(name="Open", visibility=res.VISIBILITY_PUBLIC), metadata=as_user(owner)
        )
    ).organization
    await expect(grpc.StatusCode.NOT_FOUND, identity.stub.GetOrganization(pb.GetOrganizationRequest(organization_id=private.id), metadata=as_user(stranger)))
    seen = await identity.stub.GetOrganization(pb.GetOrganizationRequest(organization_id=public.id), metadata=as_user(stranger))
    assert seen.organization.name == "Open"


async def test_a_member_of_one_organisation_cannot_list_add_or_remove_members_of_another(identity):
    a = await identity.sign_up("Org A")
    b = await identity.sign_up("Org B")
    b_member = await identity.member(b.organization.id)
    acting = as_user(a.user.id)
    await expect(grpc.StatusCode.PERMISSION_DENIED, identity.stub.ListMembers(pb.ListMembersRequest(organization_id=b.organization.id), metadata=acting))
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        identity.stub.AddMember(pb.AddMemberRequest(organization_id=b.organization.id, user_id=a.user.id, role=res.ROLE_ADMIN), metadata=acting),
    )
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        identity.stub.RemoveMember(pb.RemoveMemberRequest(organization_id=b.organization.id, user_id=b_member), metadata=acting),
    )
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        identity.stub.ChangeRole(pb.ChangeRoleRequest(organization_id=b.organization.id, user_id=b_member, role=res.ROLE_OWNER), metadata=acting),
    )
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.memberships WHERE organization_id = $1", b.organization.id) == 2


async def test_plain_members_cannot_manage_members_and_admins_cannot_touch_owners(identity):
    owner = await identity.sign_up()
    org = owner.organization.id
    member = await identity.member(org, res.ROLE_MEMBER)
    admin = await identity.member(org, res.ROLE_ADMIN)
    newcomer = (await identity.sign_up("New")).user.id
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        identity.stub.AddMember(pb.AddMemberRequest(organization_id=org, user_id=newcomer, role=res.ROLE_MEMBER), metadata=as_user(member)),
    )
    added = await identity.stub.AddMember(
        pb.AddMemberRequest(organization_id=org, user_id=newcomer, role=res.ROLE_MEMBER), metadata=as_user(admin)
    )
    assert added.membership.role == res.ROLE_MEMBER
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        identity.stub.ChangeRole(pb.ChangeRoleRequest(organization_id=org, user_id=newcomer, role=res.ROLE_OWNER), metadata=as_user(admin)),
    )
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        identity.stub.RemoveMember(pb.RemoveMemberRequest(organization_id=org, user_id=owner.user.id), metadata=as_user(admin)),
    )
    await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        identity.stub.AddMember(pb.AddMemberRequest(organization_id=org, user_id=newcomer, role=res.ROLE_ADMIN), metadata=as_user(admin)),
    )


async def test_the_last_owner_cannot_be_removed_or_demoted(identity):
    owner = await identity.sign_up()
    org = owner.organization.id
    await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        identity.stub.RemoveMember(pb.RemoveMemberRequest(organization_id=org, user_id=owner.user.id), metadata=as_user(owner.user.id)),
    )
    error = await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        identity.stub.ChangeRole(pb.ChangeRoleRequest(organization_id=org, user_id=owner.user.id, role=res.ROLE_ADMIN), metadata=OPERATOR),
    )
    assert "last owner" in error.details()


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(identity):
    first = await identity.sign_up()
    org = first.organization.id
    second = await identity.member(org, res.ROLE_OWNER)
    results = await asyncio.gather(
        identity.stub.ChangeRole(pb.ChangeRoleRequest(organization_id=org, user_id=second, role=res.ROLE_MEMBER), metadata=as_user(first.user.id)),
        identity.stub.ChangeRole(pb.ChangeRoleRequest(organization_id=org, user_id=first.user.id, role=res.ROLE_MEMBER), metadata=as_user(second)),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(failures) == 1
    assert failures[0].code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.memberships WHERE organization_id = $1 AND role = 'owner'", org) == 1


async def test_member_lists_page_through_every_member_once(identity):
    owner = await identity.sign_up()
    org = owner.organization.id
    added = {await identity.member(org) for _ in range(7)}
    seen: list[str] = []
    token = ""
    while True:
        page = await identity.stub.ListMembers(pb.ListMembersRequest(organization_id=org, page_size=3, page_token=token), metadata=OPERATOR)
        seen += [m.user_id for m in page.memberships]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 8 and set(seen) == added | {owner.user.id}
    error = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        identity.stub.ListMembers(pb.ListMembersRequest(organization_id=org, page_token="garbage"), metadata=OPERATOR),
    )
    assert [v.field for v in field_violations(error)] == ["page_token"]


@pytest.mark.parametrize(
    "request_message, fields",
    [
        (pb.SignUpRequest(email="", display_name=""), ["email", "display_name"]),
        (pb.SignUpRequest(email="not-an-email", display_name="x" * 101), ["email", "display_name"]),
        (pb.SignUpRequest(email="a@b.co", display_name="bad\x00name"), ["display_name"]),
        (pb.AddMemberRequest(organization_id="nope", user_id="", role=res.ROLE_UNSPECIFIED), ["organization_id", "user_id", "role"]),
        (pb.ListMembersRequest(organization_id=str(uuid.uuid4()), page_size=-1), ["page_size"]),
        (pb.CreateAgentRequest(organization_id=str(uuid.uuid4()), name=""), ["name"]),
    ],
    ids=["empty", "malformed-and-oversized", "control-characters", "member-ids-and-role", "negative-page-size", "agent-name"],
)
async def test_bad_input_is_invalid_argument_with_field_violations(identity, request_message, fields):
    method = getattr(identity.stub, type(request_message).__name__.removesuffix("Request"))
    error = await expect(grpc.StatusCode.INVALID_ARGUMENT, method(request_message, metadata=OPERATOR))
    assert [v.field for v in field_violations(error)] == fields
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.users") == 0


async def test_setting_the_current_role_again_changes_nothing(identity):
    owner = await identity.sign_up()
    org = owner.organization.id
    admin = await identity.member(org, res.ROLE_ADMIN)
    same = await identity.stub.ChangeRole(
        pb.ChangeRoleRequest(organization_id=org, user_id=owner.user.id, role=res.ROLE_OWNER), metadata=as_user(admin)
    )
    assert same.membership.role == res.ROLE_OWNER
