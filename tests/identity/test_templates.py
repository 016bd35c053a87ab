"""Agent schema objects and installing agents from templates: mirroring, idempotence under
concurrency, collisions that leave nothing behind, resync that keeps history, uninstall."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
import pytest

from switchboard.shared.errors import field_violations
from switchboard.identity.v1 import agent_service_pb2 as apb
from switchboard.identity.v1 import agent_service_pb2_grpc
from switchboard.identity.v1 import identity_service_pb2 as pb
from switchboard.identity.v1 import resources_pb2 as res
from tests.identity.conftest import OPERATOR, as_user
from tests.identity.test_organizations import expect


@dataclass
class Template:
    agent_id: str
    organization_id: str
    owner: str
    watcher_id: str
    entity_type_ids: list[str]


@pytest.fixture
async def agents(identity):
    return agent_service_pb2_grpc.AgentServiceStub(identity.channel)


async def make_template(identity, agents) -> Template:
    """A public template organisation whose agent has 2 entity types, 1 relationship type,
    1 watcher (one version) and 1 classifier tied to the watcher."""
    owner = (await identity.sign_up("Template Owner")).user.id
    org = (
        await identity.stub.CreateOrganization(
            pb.CreateOrganizationRequest(name="Templates", visibility=res.VISIBILITY_PUBLIC), metadata=as_user(owner)
        )
    ).organization.id
    agent = (await identity.stub.CreateAgent(pb.CreateAgentRequest(organization_id=org, name="Bookkeeper"), metadata=as_user(owner))).agent.id
    me = as_user(owner)
    entity_ids = []
    for slug in ("transaction", "account"):
        created = await agents.CreateEntityType(
            apb.CreateEntityTypeRequest(organization_id=org, agent_id=agent, slug=slug, name=slug.title(), schema_json='{"type": "object"}'),
            metadata=me,
        )
        entity_ids.append(created.entity_type.id)
    await agents.CreateRelationshipType(
        apb.CreateRelationshipTypeRequest(organization_id=org, agent_id=agent, slug="pays", name="Pays", schema_json="{}"), metadata=me
    )
    watcher = await agents.CreateWatcher(
        apb.CreateWatcherRequest(
            organization_id=org, agent_id=agent, slug="large_payments", name="Large payments", prompt="v1 prompt", schema_json="{}"
        ),
        metadata=me,
    )
    await agents.CreateEventClassifier(
        apb.CreateEventClassifierRequest(
            organization_id=org, agent_id=agent, slug="payment", name="Payment", watcher_id=watcher.watcher.id, definition_json="{}"
        ),
        metadata=me,
    )
    return Template(agent, org, owner, watcher.watcher.id, entity_ids)


async def target_admin(identity) -> tuple[str, str]:
    signed_up = await identity.sign_up("Target Admin")
    return signed_up.user.id, signed_up.organization.id


def install_request(template: Template, target: str) -> apb.InstallAgentFromTemplateRequest:
    return apb.InstallAgentFromTemplateRequest(template_agent_id=template.agent_id, target_organization_id=target)


async def object_counts(identity, organization_id: str) -> tuple[int, int, int, int, int]:
    tables = ("entity_types", "relationship_types", "watchers", "watcher_versions", "event_classifiers")
    counts = []
    for table in tables:
        if table == "watcher_versions":
            query = "SELECT count(*) FROM identity.watcher_versions v JOIN identity.watchers w ON w.id = v.watcher_id WHERE w.organization_id = $1"
        else:
            query = f"SELECT count(*) FROM identity.{table} WHERE organization_id = $1"
        counts.append(await identity.pool.fetchval(query, organization_id))
    return tuple(counts)


async def test_install_mirrors_every_active_object_tagged_with_provenance(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    reply = await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))
    assert reply.created
    assert (reply.counts.entity_types, reply.counts.relationship_types, reply.counts.watchers, reply.counts.event_classifiers) == (2, 1, 1, 1)
    assert reply.agent.organization_id == target and reply.agent.template_agent_id == template.agent_id
    assert reply.agent.source_organization_id == template.organization_id
    entity_types = (await agents.ListEntityTypes(apb.ListEntityTypesRequest(organization_id=target), metadata=as_user(admin))).entity_types
    assert sorted(e.slug for e in entity_types) == ["account", "transaction"]
    assert all(e.provenance.template_agent_id == template.agent_id and e.provenance.source_organization_id == template.organization_id for e in entity_types)
    watcher = (await agents.ListWatchers(apb.ListWatchersRequest(organization_id=target), metadata=as_user(admin))).watchers[0]
    assert watcher.current_version.version == 1 and watcher.current_version.prompt == "v1 prompt"
    assert watcher.current_version.provenance.template_agent_id == template.agent_id
    classifier = (await agents.ListEventClassifiers(apb.ListEventClassifiersRequest(organization_id=target), metadata=as_user(admin))).event_classifiers[0]
    assert classifier.watcher_id == watcher.id  # re-pointed at the mirrored watcher, not the template's


async def test_installing_again_returns_the_same_agent_and_writes_nothing(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    first = await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))
    before = await object_counts(identity, target)
    again = await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))
    assert not again.created and again.agent.id == first.agent.id and again.counts == first.counts
    assert await object_counts(identity, target) == before


async def test_ten_concurrent_installs_make_one_agent_and_none_fails(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    replies = await asyncio.gather(
        *(agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin)) for _ in range(10))
    )
    assert len({r.agent.id for r in replies}) == 1 and sum(r.created for r in replies) == 1
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.agents WHERE organization_id = $1", target) == 1
    assert await object_counts(identity, target) == (2, 1, 1, 1, 1)


async def test_a_user_authored_slug_stops_the_install_and_leaves_the_target_unchanged(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    own_agent = (await identity.stub.CreateAgent(pb.CreateAgentRequest(organization_id=target, name="Mine"), metadata=as_user(admin))).agent.id
    await agents.CreateEntityType(
        apb.CreateEntityTypeRequest(organization_id=target, agent_id=own_agent, slug="transaction", name="My transactions", schema_json="{}"),
        metadata=as_user(admin),
    )
    before = await object_counts(identity, target)
    error = await expect(grpc.StatusCode.FAILED_PRECONDITION, agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin)))
    assert "'transaction'" in error.details() and "user-authored" in error.details()
    assert await object_counts(identity, target) == before
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.agents WHERE organization_id = $1", target) == 1  # only "Mine"


async def test_an_archived_user_authored_watcher_with_a_colliding_slug_gets_the_same_clear_error(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    own_agent = (await identity.stub.CreateAgent(pb.CreateAgentRequest(organization_id=target, name="Mine"), metadata=as_user(admin))).agent.id
    mine = await agents.CreateWatcher(
        apb.CreateWatcherRequest(organization_id=target, agent_id=own_agent, slug="large_payments", name="Mine", prompt="p", schema_json="{}"),
        metadata=as_user(admin),
    )
    await agents.ArchiveWatcher(apb.ArchiveWatcherRequest(watcher_id=mine.watcher.id), metadata=as_user(admin))
    error = await expect(grpc.StatusCode.FAILED_PRECONDITION, agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin)))
    assert "'large_payments'" in error.details() and "user-authored, archived" in error.details()
    assert await identity.pool.fetchval("SELECT count(*) FROM identity.entity_types WHERE organization_id = $1", target) == 0


async def test_another_templates_object_also_blocks_the_install(identity, agents):
    first = await make_template(identity, agents)
    second = await make_template(identity, agents)  # same slugs, another template
    admin, target = await target_admin(identity)
    await agents.InstallAgentFromTemplate(install_request(first, target), metadata=as_user(admin))
    error = await expect(grpc.StatusCode.FAILED_PRECONDITION, agents.InstallAgentFromTemplate(install_request(second, target), metadata=as_user(admin)))
    assert f"managed by template agent {first.agent_id}" in error.details()


async def test_the_checks_before_anything_is_written(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    member = await identity.member(target, res.ROLE_MEMBER)
    await expect(grpc.StatusCode.PERMISSION_DENIED, agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(member)))
    own = await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        agents.InstallAgentFromTemplate(install_request(template, template.organization_id), metadata=as_user(template.owner)),
    )
    assert "its own organisation" in own.details()
    installed = await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))
    copy = await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        agents.InstallAgentFromTemplate(
            apb.InstallAgentFromTemplateRequest(template_agent_id=installed.agent.id, target_organization_id=template.organization_id),
            metadata=OPERATOR,
        ),
    )
    assert "itself installed" in copy.details()
    private_agent = (await identity.stub.CreateAgent(pb.CreateAgentRequest(organization_id=target, name="Private"), metadata=as_user(admin))).agent.id
    private = await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        agents.InstallAgentFromTemplate(
            apb.InstallAgentFromTemplateRequest(template_agent_id=private_agent, target_organization_id=template.organization_id),
            metadata=OPERATOR,
        ),
    )
    assert "not public" in private.details()
    # To an admin of another organisation, a private organisation's agent does not exist.
    outsider = await identity.sign_up("Outsider")
    hidden = await expect(
        grpc.StatusCode.NOT_FOUND,
        agents.InstallAgentFromTemplate(
            apb.InstallAgentFromTemplateRequest(template_agent_id=private_agent, target_organization_id=outsider.organization.id),
            metadata=as_user(outsider.user.id),
        ),
    )
    assert "does not exist" in hidden.details()
    await expect(
        grpc.StatusCode.NOT_FOUND,
        agents.InstallAgentFromTemplate(
            apb.InstallAgentFromTemplateRequest(template_agent_id=target, target_organization_id=target), metadata=OPERATOR
        ),
    )


async def test_resync_appends_a_watcher_version_and_keeps_the_old_one(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    installed = (await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))).agent
    mirrored = (await agents.ListWatchers(apb.ListWatchersRequest(organization_id=target), metadata=as_user(admin))).watchers[0]
    v1 = mirrored.current_version

    updated = await agents.UpdateWatcher(apb.UpdateWatcherRequest(watcher_id=template.watcher_id, prompt="v2 prompt"), metadata=as_user(template.owner))
    assert updated.version_created and updated.watcher.current_version.version == 2

    resync = await agents.ResyncInstalledAgent(apb.ResyncInstalledAgentRequest(agent_id=installed.id), metadata=as_user(admin))
    assert resync.watcher_versions_created == 1 and resync.updated.watchers == 1 and resync.agent.name == installed.name
    versions = (await agents.ListWatcherVersions(apb.ListWatcherVersionsRequest(watcher_id=mirrored.id), metadata=as_user(admin))).watcher_versions
    assert [(v.version, v.prompt) for v in versions] == [(1, "v1 prompt"), (2, "v2 prompt")]
    assert versions[0] == v1  # the old row is exactly as it was
    now = (await agents.GetWatcher(apb.GetWatcherRequest(watcher_id=mirrored.id), metadata=as_user(admin))).watcher
    assert now.current_version.id == versions[1].id

    before = await object_counts(identity, target)
    again = await agents.ResyncInstalledAgent(apb.ResyncInstalledAgentRequest(agent_id=installed.id), metadata=as_user(admin))
    assert again.watcher_versions_created == 0 and again.updated == apb.SchemaObjectCounts() and again.created == apb.SchemaObjectCounts()
    assert await object_counts(identity, target) == before


async def test_resync_mirrors_new_objects_and_archives_removed_ones(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    installed = (await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))).agent
    await agents.ArchiveEntityType(apb.ArchiveEntityTypeRequest(entity_type_id=template.entity_type_ids[1]), metadata=as_user(template.owner))
    await agents.CreateEntityType(
        apb.CreateEntityTypeRequest(organization_id=template.organization_id, agent_id=template.agent_id, slug="invoice", name="Invoice", schema_json="{}"),
        metadata=as_user(template.owner),
    )
    resync = await agents.ResyncInstalledAgent(apb.ResyncInstalledAgentRequest(agent_id=installed.id), metadata=as_user(admin))
    assert (resync.created.entity_types, resync.archived.entity_types) == (1, 1)
    listed = await agents.ListEntityTypes(apb.ListEntityTypesRequest(organization_id=target, include_archived=True), metadata=as_user(admin))
    assert {(e.slug, e.status) for e in listed.entity_types} == {
        ("account", apb.SCHEMA_OBJECT_STATUS_ARCHIVED),
        ("invoice", apb.SCHEMA_OBJECT_STATUS_ACTIVE),
        ("transaction", apb.SCHEMA_OBJECT_STATUS_ACTIVE),
    }


async def test_managed_objects_change_only_through_the_template(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))
    mirrored = (await agents.ListEntityTypes(apb.ListEntityTypesRequest(organization_id=target), metadata=as_user(admin))).entity_types[0]
    error = await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        agents.UpdateEntityType(apb.UpdateEntityTypeRequest(entity_type_id=mirrored.id, name="Mine now"), metadata=as_user(admin)),
    )
    assert "managed by its template" in error.details()
    await expect(grpc.StatusCode.FAILED_PRECONDITION, agents.ArchiveEntityType(apb.ArchiveEntityTypeRequest(entity_type_id=mirrored.id), metadata=as_user(admin)))


async def test_resync_of_an_agent_that_was_not_installed_is_refused(identity, agents):
    template = await make_template(identity, agents)
    error = await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        agents.ResyncInstalledAgent(apb.ResyncInstalledAgentRequest(agent_id=template.agent_id), metadata=as_user(template.owner)),
    )
    assert "not installed from a template" in error.details()


async def test_uninstall_removes_managed_objects_and_never_user_authored_ones(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    installed = (await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))).agent
    own_agent = (await identity.stub.CreateAgent(pb.CreateAgentRequest(organization_id=target, name="Mine"), metadata=as_user(admin))).agent.id
    mine = await agents.CreateEntityType(
        apb.CreateEntityTypeRequest(organization_id=target, agent_id=own_agent, slug="mine", name="Mine", schema_json="{}"), metadata=as_user(admin)
    )
    removed = await agents.UninstallAgent(apb.UninstallAgentRequest(agent_id=installed.id), metadata=as_user(admin))
    assert (removed.removed.entity_types, removed.removed.watchers, removed.removed.event_classifiers) == (2, 1, 1)
    assert await object_counts(identity, target) == (1, 0, 0, 0, 0)
    kept = await agents.GetEntityType(apb.GetEntityTypeRequest(entity_type_id=mine.entity_type.id), metadata=as_user(admin))
    assert kept.entity_type.slug == "mine"
    again = await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))
    assert again.created  # a fresh install after an uninstall


async def test_watcher_versions_are_append_only_in_the_database(identity, agents):
    template = await make_template(identity, agents)
    import asyncpg

    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await identity.pool.execute("UPDATE identity.watcher_versions SET prompt = 'rewritten' WHERE watcher_id = $1", template.watcher_id)


async def test_slugs_are_unique_per_organisation_and_kind_whatever_the_status(identity, agents):
    template = await make_template(identity, agents)
    me = as_user(template.owner)
    await agents.ArchiveEntityType(apb.ArchiveEntityTypeRequest(entity_type_id=template.entity_type_ids[0]), metadata=me)
    error = await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        agents.CreateEntityType(
            apb.CreateEntityTypeRequest(organization_id=template.organization_id, agent_id=template.agent_id, slug="transaction", name="T", schema_json="{}"),
            metadata=me,
        ),
    )
    assert "archived" in error.details()
    # Another kind may use the same slug.
    await agents.CreateRelationshipType(
        apb.CreateRelationshipTypeRequest(organization_id=template.organization_id, agent_id=template.agent_id, slug="transaction", name="T", schema_json="{}"),
        metadata=me,
    )


async def test_bad_schema_object_input_is_invalid_argument(identity, agents):
    template = await make_template(identity, agents)
    error = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        agents.CreateEntityType(
            apb.CreateEntityTypeRequest(organization_id=template.organization_id, agent_id="x", slug="Bad Slug", name="", schema_json="[1]"),
            metadata=as_user(template.owner),
        ),
    )
    assert [v.field for v in field_violations(error)] == ["agent_id", "slug", "name", "schema_json"]


async def test_uninstalling_an_agent_revokes_its_tokens_and_keeps_their_revocations(identity, agents):
    template = await make_template(identity, agents)
    admin, target = await target_admin(identity)
    installed = (await agents.InstallAgentFromTemplate(install_request(template, target), metadata=as_user(admin))).agent
    live = await identity.stub.IssueWorkerToken(pb.IssueWorkerTokenRequest(agent_id=installed.id), metadata=OPERATOR)
    revoked = await identity.stub.IssueWorkerToken(pb.IssueWorkerTokenRequest(agent_id=installed.id), metadata=OPERATOR)
    await identity.stub.RevokeWorkerToken(pb.RevokeWorkerTokenRequest(token_id=revoked.token_id), metadata=OPERATOR)
    await agents.UninstallAgent(apb.UninstallAgentRequest(agent_id=installed.id), metadata=as_user(admin))
    listed = await identity.stub.ListRevokedWorkerTokens(pb.ListRevokedWorkerTokensRequest(), metadata=OPERATOR)
    assert {t.token_id for t in listed.revoked_tokens} == {live.token_id, revoked.token_id}
    assert await identity.revocations.run_once()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await identity.stub.GetOrganization(pb.GetOrganizationRequest(organization_id=target), metadata=(("authorization", f"Bearer {live.token}"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_watcher_prompts_keep_their_newlines(identity, agents):
    template = await make_template(identity, agents)
    prompt = "Watch for:\n- large payments\n- refunds"
    updated = await agents.UpdateWatcher(apb.UpdateWatcherRequest(watcher_id=template.watcher_id, prompt=prompt), metadata=as_user(template.owner))
    assert updated.watcher.current_version.prompt == prompt
