"""The AgentService servicer: thin (parse, call the domain, encode)."""

from __future__ import annotations

import asyncpg
import grpc

from switchboard.services.identity import convert, schema_objects, store, templates
from switchboard.services.identity.schema_objects import MAX_DESCRIPTION, MAX_DOCUMENT, MAX_NAME, MAX_PROMPT, json_object, slug
from switchboard.shared.auth import current_principal
from switchboard.shared.authz import Role, Target, policy
from switchboard.shared.errors import NotFound
from switchboard.shared.pagination import decode_page_token, page_of
from switchboard.shared.validation import Violations
from switchboard.identity.v1 import agent_service_pb2 as pb
from switchboard.identity.v1 import agent_service_pb2_grpc

Context = grpc.aio.ServicerContext
# Calls on one schema object are authorised in the object's organisation (NOT_FOUND otherwise).
ENTITY_TYPE = Target("entity_type_id", locate="organization_of_entity_type", noun="entity type")
RELATIONSHIP_TYPE = Target("relationship_type_id", locate="organization_of_relationship_type", noun="relationship type")
WATCHER = Target("watcher_id", locate="organization_of_watcher", noun="watcher")
EVENT_CLASSIFIER = Target("event_classifier_id", locate="organization_of_event_classifier", noun="event classifier")


def _counts(values: dict[str, int]) -> pb.SchemaObjectCounts:
    return pb.SchemaObjectCounts(
        entity_types=values.get("entity_type", 0),
        relationship_types=values.get("relationship_type", 0),
        watchers=values.get("watcher", 0),
        event_classifiers=values.get("event_classifier", 0),
    )


class AgentService(agent_service_pb2_grpc.AgentServiceServicer):
    """switchboard.identity.v1.AgentService."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    # -- where resources live (for the policies' targets) ------------------------------------

    async def _organization_of(self, kind: str, object_id: str) -> str | None:
        row = await store.object_get(self._pool, kind, object_id)
        return str(row["organization_id"]) if row else None

    async def organization_of_entity_type(self, object_id: str) -> str | None:
        return await self._organization_of("entity_type", object_id)

    async def organization_of_relationship_type(self, object_id: str) -> str | None:
        return await self._organization_of("relationship_type", object_id)

    async def organization_of_watcher(self, object_id: str) -> str | None:
        return await self._organization_of("watcher", object_id)

    async def organization_of_event_classifier(self, object_id: str) -> str | None:
        return await self._organization_of("event_classifier", object_id)

    async def organization_of_watcher_version(self, version_id: str) -> str | None:
        row = await store.watcher_version_get(self._pool, version_id)
        return str(row["organization_id"]) if row else None

    async def organization_of_agent(self, agent_id: str) -> str | None:
        row = await store.agent_get(self._pool, agent_id)
        return str(row["organization_id"]) if row else None

    # -- shared shapes -------------------------------------------------------------------------

    async def _create_typed(self, kind: str, request) -> store.Record:
        """Entity and relationship types: the same fields, different tables."""
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        agent_id = v.uuid("agent_id", request.agent_id)
        values = {
            "slug": slug(v, "slug", request.slug),
            "name": v.text("name", request.name, max_length=MAX_NAME),
            "description": v.document("description", request.description, max_length=MAX_DESCRIPTION),
            "schema_json": json_object(v, "schema_json", request.schema_json),
        }
        v.check()
        return await schema_objects.create(self._pool, current_principal(), kind, organization_id, agent_id, values)

    async def _update_typed(self, kind: str, object_id_field: str, request) -> store.Record:
        v = Violations()
        object_id = v.uuid(object_id_field, getattr(request, object_id_field))
        changes: dict[str, object] = {}
        if request.HasField("name"):
            changes["name"] = v.text("name", request.name, max_length=MAX_NAME)
        if request.HasField("description"):
            changes["description"] = v.document("description", request.description, max_length=MAX_DESCRIPTION)
        if request.HasField("schema_json"):
            changes["schema_json"] = json_object(v, "schema_json", request.schema_json)
        v.check()
        return await schema_objects.update(self._pool, current_principal(), kind, object_id, changes)

    async def _get(self, kind: str, field: str, request) -> store.Record:
        v = Violations()
        object_id = v.uuid(field, getattr(request, field))
        v.check()
        return await schema_objects.readable(self._pool, current_principal(), kind, object_id)

    async def _archive(self, kind: str, field: str, request) -> store.Record:
        v = Violations()
        object_id = v.uuid(field, getattr(request, field))
        v.check()
        return await schema_objects.archive(self._pool, current_principal(), kind, object_id)

    async def _list(self, kind: str, request) -> tuple[list[store.Record], str]:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        agent_id = v.uuid("agent_id", request.agent_id, required=False) or None
        page_size = v.page_size("page_size", request.page_size)
        v.check()
        after = decode_page_token(request, (str,))
        rows = await schema_objects.list_objects(
            self._pool,
            current_principal(),
            kind,
            organization_id,
            agent_id=agent_id,
            include_archived=request.include_archived,
            after_slug=after[0] if after else None,
            limit=page_size + 1,
        )
        return page_of(rows, page_size, lambda r: (r["slug"],), request)

    # -- entity types --------------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def CreateEntityType(self, request, context):
        return pb.CreateEntityTypeResponse(entity_type=convert.entity_type(await self._create_typed("entity_type", request)))

    @policy(user=Role.MEMBER, target=ENTITY_TYPE)
    async def GetEntityType(self, request, context):
        return pb.GetEntityTypeResponse(entity_type=convert.entity_type(await self._get("entity_type", "entity_type_id", request)))

    @policy(user=Role.ADMIN, target=ENTITY_TYPE)
    async def UpdateEntityType(self, request, context):
        row = await self._update_typed("entity_type", "entity_type_id", request)
        return pb.UpdateEntityTypeResponse(entity_type=convert.entity_type(row))

    @policy(user=Role.ADMIN, target=ENTITY_TYPE)
    async def ArchiveEntityType(self, request, context):
        row = await self._archive("entity_type", "entity_type_id", request)
        return pb.ArchiveEntityTypeResponse(entity_type=convert.entity_type(row))

    @policy(user=Role.MEMBER, target="organization_id")
    async def ListEntityTypes(self, request, context):
        rows, token = await self._list("entity_type", request)
        return pb.ListEntityTypesResponse(entity_types=[convert.entity_type(r) for r in rows], next_page_token=token)

    # -- relationship types --------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def CreateRelationshipType(self, request, context):
        row = await self._create_typed("relationship_type", request)
        return pb.CreateRelationshipTypeResponse(relationship_type=convert.relationship_type(row))

    @policy(user=Role.MEMBER, target=RELATIONSHIP_TYPE)
    async def GetRelationshipType(self, request, context):
        row = await self._get("relationship_type", "relationship_type_id", request)
        return pb.GetRelationshipTypeResponse(relationship_type=convert.relationship_type(row))

    @policy(user=Role.ADMIN, target=RELATIONSHIP_TYPE)
    async def UpdateRelationshipType(self, request, context):
        row = await self._update_typed("relationship_type", "relationship_type_id", request)
        return pb.UpdateRelationshipTypeResponse(relationship_type=convert.relationship_type(row))

    @policy(user=Role.ADMIN, target=RELATIONSHIP_TYPE)
    async def ArchiveRelationshipType(self, request, context):
        row = await self._archive("relationship_type", "relationship_type_id", request)
        return pb.ArchiveRelationshipTypeResponse(relationship_type=convert.relationship_type(row))

    @policy(user=Role.MEMBER, target="organization_id")
    async def ListRelationshipTypes(self, request, context):
        rows, token = await self._list("relationship_type", request)
        return pb.ListRelationshipTypesResponse(relationship_types=[convert.relationship_type(r) for r in rows], next_page_token=token)

    # -- watchers ------------------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def CreateWatcher(self, request, context):
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        agent_id = v.uuid("agent_id", request.agent_id)
        values = {"slug": slug(v, "slug", request.slug), "name": v.text("name", request.name, max_length=MAX_NAME)}
        prompt = v.document("prompt", request.prompt, max_length=MAX_PROMPT, required=True)
        schema_json = json_object(v, "schema_json", request.schema_json)
        v.document("reaction_script", request.reaction_script, max_length=MAX_DOCUMENT)
        v.check()
        row = await schema_objects.create(
            self._pool,
            current_principal(),
            "watcher",
            organization_id,
            agent_id,
            values,
            first_version=(prompt, schema_json, request.reaction_script),
        )
        return pb.CreateWatcherResponse(watcher=convert.watcher(row))

    @policy(user=Role.MEMBER, target=WATCHER)
    async def GetWatcher(self, request, context):
        return pb.GetWatcherResponse(watcher=convert.watcher(await self._get("watcher", "watcher_id", request)))

    @policy(user=Role.ADMIN, target=WATCHER)
    async def UpdateWatcher(self, request, context):
        v = Violations()
        watcher_id = v.uuid("watcher_id", request.watcher_id)
        name = v.text("name", request.name, max_length=MAX_NAME) if request.HasField("name") else None
        prompt = v.document("prompt", request.prompt, max_length=MAX_PROMPT, required=True) if request.HasField("prompt") else None
        schema_json = json_object(v, "schema_json", request.schema_json) if request.HasField("schema_json") else None
        script = v.document("reaction_script", request.reaction_script, max_length=MAX_DOCUMENT) if request.HasField("reaction_script") else None
        v.check()
        row, appended = await schema_objects.update_watcher(
            self._pool, current_principal(), watcher_id, name, prompt, schema_json, script
        )
        return pb.UpdateWatcherResponse(watcher=convert.watcher(row), version_created=appended)

    @policy(user=Role.ADMIN, target=WATCHER)
    async def ArchiveWatcher(self, request, context):
        return pb.ArchiveWatcherResponse(watcher=convert.watcher(await self._archive("watcher", "watcher_id", request)))

    @policy(user=Role.MEMBER, target="organization_id")
    async def ListWatchers(self, request, context):
        rows, token = await self._list("watcher", request)
        return pb.ListWatchersResponse(watchers=[convert.watcher(r) for r in rows], next_page_token=token)

    @policy(user=Role.MEMBER, target=WATCHER)
    async def ListWatcherVersions(self, request, context):
        v = Violations()
        watcher_id = v.uuid("watcher_id", request.watcher_id)
        page_size = v.page_size("page_size", request.page_size)
        v.check()
        after = decode_page_token(request, (int,))
        await schema_objects.readable(self._pool, current_principal(), "watcher", watcher_id)
        rows = await store.watcher_version_list(self._pool, watcher_id, after_version=after[0] if after else None, limit=page_size + 1)
        rows, token = page_of(rows, page_size, lambda r: (r["version"],), request)
        return pb.ListWatcherVersionsResponse(watcher_versions=[convert.watcher_version(r) for r in rows], next_page_token=token)

    @policy(user=Role.MEMBER, target=Target("watcher_version_id", locate="organization_of_watcher_version", noun="watcher version"))
    async def GetWatcherVersion(self, request, context):
        v = Violations()
        version_id = v.uuid("watcher_version_id", request.watcher_version_id)
        v.check()
        row = await store.watcher_version_get(self._pool, version_id)
        if row is None or await schema_objects.access.standing(self._pool, current_principal(), str(row["organization_id"])) == "none":
            raise NotFound(f"watcher version {version_id} does not exist", reason="OBJECT_NOT_FOUND")
        return pb.GetWatcherVersionResponse(watcher_version=convert.watcher_version(row))

    # -- event classifiers ---------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def CreateEventClassifier(self, request, context):
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        agent_id = v.uuid("agent_id", request.agent_id)
        values = {
            "slug": slug(v, "slug", request.slug),
            "name": v.text("name", request.name, max_length=MAX_NAME),
            "description": v.document("description", request.description, max_length=MAX_DESCRIPTION),
            "watcher_id": v.uuid("watcher_id", request.watcher_id, required=False) or None,
            "definition_json": json_object(v, "definition_json", request.definition_json),
        }
        v.check()
        row = await schema_objects.create(self._pool, current_principal(), "event_classifier", organization_id, agent_id, values)
        return pb.CreateEventClassifierResponse(event_classifier=convert.event_classifier(row))

    @policy(user=Role.MEMBER, target=EVENT_CLASSIFIER)
    async def GetEventClassifier(self, request, context):
        row = await self._get("event_classifier", "event_classifier_id", request)
        return pb.GetEventClassifierResponse(event_classifier=convert.event_classifier(row))

    @policy(user=Role.ADMIN, target=EVENT_CLASSIFIER)
    async def UpdateEventClassifier(self, request, context):
        v = Violations()
        object_id = v.uuid("event_classifier_id", request.event_classifier_id)
        changes: dict[str, object] = {}
        if request.HasField("name"):
            changes["name"] = v.text("name", request.name, max_length=MAX_NAME)
        if request.HasField("description"):
            changes["description"] = v.document("description", request.description, max_length=MAX_DESCRIPTION)
        if request.HasField("watcher_id"):
            changes["watcher_id"] = v.uuid("watcher_id", request.watcher_id, required=False) or None
        if request.HasField("definition_json"):
            changes["definition_json"] = json_object(v, "definition_json", request.definition_json)
        v.check()
        row = await schema_objects.update(self._pool, current_principal(), "event_classifier", object_id, changes)
        return pb.UpdateEventClassifierResponse(event_classifier=convert.event_classifier(row))

    @policy(user=Role.ADMIN, target=EVENT_CLASSIFIER)
    async def ArchiveEventClassifier(self, request, context):
        row = await self._archive("event_classifier", "event_classifier_id", request)
        return pb.ArchiveEventClassifierResponse(event_classifier=convert.event_classifier(row))

    @policy(user=Role.MEMBER, target="organization_id")
    async def ListEventClassifiers(self, request, context):
        rows, token = await self._list("event_classifier", request)
        return pb.ListEventClassifiersResponse(event_classifiers=[convert.event_classifier(r) for r in rows], next_page_token=token)

    # -- templates -----------------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="target_organization_id")
    async def InstallAgentFromTemplate(self, request, context):
        v = Violations()
        template_agent_id = v.uuid("template_agent_id", request.template_agent_id)
        target = v.uuid("target_organization_id", request.target_organization_id)
        v.check()
        agent, created, counts = await templates.install(self._pool, current_principal(), template_agent_id, target)
        return pb.InstallAgentFromTemplateResponse(agent=convert.agent(agent), created=created, counts=_counts(counts))

    @policy(user=Role.ADMIN, target=Target("agent_id", locate="organization_of_agent", noun="agent"))
    async def ResyncInstalledAgent(self, request, context):
        v = Violations()
        agent_id = v.uuid("agent_id", request.agent_id)
        v.check()
        agent, report = await templates.resync(self._pool, current_principal(), agent_id)
        return pb.ResyncInstalledAgentResponse(
            agent=convert.agent(agent),
            created=_counts(report.created),
            updated=_counts(report.updated),
            archived=_counts(report.archived),
            watcher_versions_created=report.watcher_versions_created,
        )

    @policy(user=Role.ADMIN, target=Target("agent_id", locate="organization_of_agent", noun="agent"))
    async def UninstallAgent(self, request, context):
        v = Violations()
        agent_id = v.uuid("agent_id", request.agent_id)
        v.check()
        removed = await templates.uninstall(self._pool, current_principal(), agent_id)
        return pb.UninstallAgentResponse(removed=_counts(removed))
