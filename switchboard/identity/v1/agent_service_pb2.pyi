import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.identity.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SchemaObjectStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCHEMA_OBJECT_STATUS_UNSPECIFIED: _ClassVar[SchemaObjectStatus]
    SCHEMA_OBJECT_STATUS_ACTIVE: _ClassVar[SchemaObjectStatus]
    SCHEMA_OBJECT_STATUS_ARCHIVED: _ClassVar[SchemaObjectStatus]
SCHEMA_OBJECT_STATUS_UNSPECIFIED: SchemaObjectStatus
SCHEMA_OBJECT_STATUS_ACTIVE: SchemaObjectStatus
SCHEMA_OBJECT_STATUS_ARCHIVED: SchemaObjectStatus

class Provenance(_message.Message):
    __slots__ = ("template_agent_id", "source_organization_id", "source_object_id")
    TEMPLATE_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    template_agent_id: str
    source_organization_id: str
    source_object_id: str
    def __init__(self, template_agent_id: _Optional[str] = ..., source_organization_id: _Optional[str] = ..., source_object_id: _Optional[str] = ...) -> None: ...

class SchemaObjectCounts(_message.Message):
    __slots__ = ("entity_types", "relationship_types", "watchers", "event_classifiers")
    ENTITY_TYPES_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIP_TYPES_FIELD_NUMBER: _ClassVar[int]
    WATCHERS_FIELD_NUMBER: _ClassVar[int]
    EVENT_CLASSIFIERS_FIELD_NUMBER: _ClassVar[int]
    entity_types: int
    relationship_types: int
    watchers: int
    event_classifiers: int
    def __init__(self, entity_types: _Optional[int] = ..., relationship_types: _Optional[int] = ..., watchers: _Optional[int] = ..., event_classifiers: _Optional[int] = ...) -> None: ...

class EntityType(_message.Message):
    __slots__ = ("id", "organization_id", "agent_id", "slug", "name", "description", "schema_json", "status", "provenance", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    agent_id: str
    slug: str
    name: str
    description: str
    schema_json: str
    status: SchemaObjectStatus
    provenance: Provenance
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., slug: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., schema_json: _Optional[str] = ..., status: _Optional[_Union[SchemaObjectStatus, str]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RelationshipType(_message.Message):
    __slots__ = ("id", "organization_id", "agent_id", "slug", "name", "description", "schema_json", "status", "provenance", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    agent_id: str
    slug: str
    name: str
    description: str
    schema_json: str
    status: SchemaObjectStatus
    provenance: Provenance
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., slug: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., schema_json: _Optional[str] = ..., status: _Optional[_Union[SchemaObjectStatus, str]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatcherVersion(_message.Message):
    __slots__ = ("id", "watcher_id", "version", "prompt", "schema_json", "reaction_script", "provenance", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    WATCHER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    REACTION_SCRIPT_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    watcher_id: str
    version: int
    prompt: str
    schema_json: str
    reaction_script: str
    provenance: Provenance
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., watcher_id: _Optional[str] = ..., version: _Optional[int] = ..., prompt: _Optional[str] = ..., schema_json: _Optional[str] = ..., reaction_script: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Watcher(_message.Message):
    __slots__ = ("id", "organization_id", "agent_id", "slug", "name", "status", "current_version", "provenance", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    agent_id: str
    slug: str
    name: str
    status: SchemaObjectStatus
    current_version: WatcherVersion
    provenance: Provenance
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., slug: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[SchemaObjectStatus, str]] = ..., current_version: _Optional[_Union[WatcherVersion, _Mapping]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EventClassifier(_message.Message):
    __slots__ = ("id", "organization_id", "agent_id", "slug", "name", "description", "watcher_id", "definition_json", "status", "provenance", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    WATCHER_ID_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    agent_id: str
    slug: str
    name: str
    description: str
    watcher_id: str
    definition_json: str
    status: SchemaObjectStatus
    provenance: Provenance
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., slug: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., watcher_id: _Optional[str] = ..., definition_json: _Optional[str] = ..., status: _Optional[_Union[SchemaObjectStatus, str]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateEntityTypeRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "slug", "name", "description", "schema_json")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    slug: str
    name: str
    description: str
    schema_json: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., slug: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., schema_json: _Optional[str] = ...) -> None: ...

class CreateEntityTypeResponse(_message.Message):
    __slots__ = ("entity_type",)
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    entity_type: EntityType
    def __init__(self, entity_type: _Optional[_Union[EntityType, _Mapping]] = ...) -> None: ...

class GetEntityTypeRequest(_message.Message):
    __slots__ = ("entity_type_id",)
    ENTITY_TYPE_ID_FIELD_NUMBER: _ClassVar[int]
    entity_type_id: str
    def __init__(self, entity_type_id: _Optional[str] = ...) -> None: ...

class GetEntityTypeResponse(_message.Message):
    __slots__ = ("entity_type",)
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    entity_type: EntityType
    def __init__(self, entity_type: _Optional[_Union[EntityType, _Mapping]] = ...) -> None: ...

class UpdateEntityTypeRequest(_message.Message):
    __slots__ = ("entity_type_id", "name", "description", "schema_json")
    ENTITY_TYPE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    entity_type_id: str
    name: str
    description: str
    schema_json: str
    def __init__(self, entity_type_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., schema_json: _Optional[str] = ...) -> None: ...

class UpdateEntityTypeResponse(_message.Message):
    __slots__ = ("entity_type",)
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    entity_type: EntityType
    def __init__(self, entity_type: _Optional[_Union[EntityType, _Mapping]] = ...) -> None: ...

class ArchiveEntityTypeRequest(_message.Message):
    __slots__ = ("entity_type_id",)
    ENTITY_TYPE_ID_FIELD_NUMBER: _ClassVar[int]
    entity_type_id: str
    def __init__(self, entity_type_id: _Optional[str] = ...) -> None: ...

class ArchiveEntityTypeResponse(_message.Message):
    __slots__ = ("entity_type",)
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    entity_type: EntityType
    def __init__(self, entity_type: _Optional[_Union[EntityType, _Mapping]] = ...) -> None: ...

class ListEntityTypesRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "include_archived", "page_size", "page_token")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    include_archived: bool
    page_size: int
    page_token: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., include_archived: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEntityTypesResponse(_message.Message):
    __slots__ = ("entity_types", "next_page_token")
    ENTITY_TYPES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entity_types: _containers.RepeatedCompositeFieldContainer[EntityType]
    next_page_token: str
    def __init__(self, entity_types: _Optional[_Iterable[_Union[EntityType, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateRelationshipTypeRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "slug", "name", "description", "schema_json")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    slug: str
    name: str
    description: str
    schema_json: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., slug: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., schema_json: _Optional[str] = ...) -> None: ...

class CreateRelationshipTypeResponse(_message.Message):
    __slots__ = ("relationship_type",)
    RELATIONSHIP_TYPE_FIELD_NUMBER: _ClassVar[int]
    relationship_type: RelationshipType
    def __init__(self, relationship_type: _Optional[_Union[RelationshipType, _Mapping]] = ...) -> None: ...

class GetRelationshipTypeRequest(_message.Message):
    __slots__ = ("relationship_type_id",)
    RELATIONSHIP_TYPE_ID_FIELD_NUMBER: _ClassVar[int]
    relationship_type_id: str
    def __init__(self, relationship_type_id: _Optional[str] = ...) -> None: ...

class GetRelationshipTypeResponse(_message.Message):
    __slots__ = ("relationship_type",)
    RELATIONSHIP_TYPE_FIELD_NUMBER: _ClassVar[int]
    relationship_type: RelationshipType
    def __init__(self, relationship_type: _Optional[_Union[RelationshipType, _Mapping]] = ...) -> None: ...

class UpdateRelationshipTypeRequest(_message.Message):
    __slots__ = ("relationship_type_id", "name", "description", "schema_json")
    RELATIONSHIP_TYPE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    relationship_type_id: str
    name: str
    description: str
    schema_json: str
    def __init__(self, relationship_type_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., schema_json: _Optional[str] = ...) -> None: ...

class UpdateRelationshipTypeResponse(_message.Message):
    __slots__ = ("relationship_type",)
    RELATIONSHIP_TYPE_FIELD_NUMBER: _ClassVar[int]
    relationship_type: RelationshipType
    def __init__(self, relationship_type: _Optional[_Union[RelationshipType, _Mapping]] = ...) -> None: ...

class ArchiveRelationshipTypeRequest(_message.Message):
    __slots__ = ("relationship_type_id",)
    RELATIONSHIP_TYPE_ID_FIELD_NUMBER: _ClassVar[int]
    relationship_type_id: str
    def __init__(self, relationship_type_id: _Optional[str] = ...) -> None: ...

class ArchiveRelationshipTypeResponse(_message.Message):
    __slots__ = ("relationship_type",)
    RELATIONSHIP_TYPE_FIELD_NUMBER: _ClassVar[int]
    relationship_type: RelationshipType
    def __init__(self, relationship_type: _Optional[_Union[RelationshipType, _Mapping]] = ...) -> None: ...

class ListRelationshipTypesRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "include_archived", "page_size", "page_token")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    include_archived: bool
    page_size: int
    page_token: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., include_archived: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRelationshipTypesResponse(_message.Message):
    __slots__ = ("relationship_types", "next_page_token")
    RELATIONSHIP_TYPES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    relationship_types: _containers.RepeatedCompositeFieldContainer[RelationshipType]
    next_page_token: str
    def __init__(self, relationship_types: _Optional[_Iterable[_Union[RelationshipType, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateWatcherRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "slug", "name", "prompt", "schema_json", "reaction_script")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    REACTION_SCRIPT_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    slug: str
    name: str
    prompt: str
    schema_json: str
    reaction_script: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., slug: _Optional[str] = ..., name: _Optional[str] = ..., prompt: _Optional[str] = ..., schema_json: _Optional[str] = ..., reaction_script: _Optional[str] = ...) -> None: ...

class CreateWatcherResponse(_message.Message):
    __slots__ = ("watcher",)
    WATCHER_FIELD_NUMBER: _ClassVar[int]
    watcher: Watcher
    def __init__(self, watcher: _Optional[_Union[Watcher, _Mapping]] = ...) -> None: ...

class GetWatcherRequest(_message.Message):
    __slots__ = ("watcher_id",)
    WATCHER_ID_FIELD_NUMBER: _ClassVar[int]
    watcher_id: str
    def __init__(self, watcher_id: _Optional[str] = ...) -> None: ...

class GetWatcherResponse(_message.Message):
    __slots__ = ("watcher",)
    WATCHER_FIELD_NUMBER: _ClassVar[int]
    watcher: Watcher
    def __init__(self, watcher: _Optional[_Union[Watcher, _Mapping]] = ...) -> None: ...

class UpdateWatcherRequest(_message.Message):
    __slots__ = ("watcher_id", "name", "prompt", "schema_json", "reaction_script")
    WATCHER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    REACTION_SCRIPT_FIELD_NUMBER: _ClassVar[int]
    watcher_id: str
    name: str
    prompt: str
    schema_json: str
    reaction_script: str
    def __init__(self, watcher_id: _Optional[str] = ..., name: _Optional[str] = ..., prompt: _Optional[str] = ..., schema_json: _Optional[str] = ..., reaction_script: _Optional[str] = ...) -> None: ...

class UpdateWatcherResponse(_message.Message):
    __slots__ = ("watcher", "version_created")
    WATCHER_FIELD_NUMBER: _ClassVar[int]
    VERSION_CREATED_FIELD_NUMBER: _ClassVar[int]
    watcher: Watcher
    version_created: bool
    def __init__(self, watcher: _Optional[_Union[Watcher, _Mapping]] = ..., version_created: _Optional[bool] = ...) -> None: ...

class ArchiveWatcherRequest(_message.Message):
    __slots__ = ("watcher_id",)
    WATCHER_ID_FIELD_NUMBER: _ClassVar[int]
    watcher_id: str
    def __init__(self, watcher_id: _Optional[str] = ...) -> None: ...

class ArchiveWatcherResponse(_message.Message):
    __slots__ = ("watcher",)
    WATCHER_FIELD_NUMBER: _ClassVar[int]
    watcher: Watcher
    def __init__(self, watcher: _Optional[_Union[Watcher, _Mapping]] = ...) -> None: ...

class ListWatchersRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "include_archived", "page_size", "page_token")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    include_archived: bool
    page_size: int
    page_token: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., include_archived: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWatchersResponse(_message.Message):
    __slots__ = ("watchers", "next_page_token")
    WATCHERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    watchers: _containers.RepeatedCompositeFieldContainer[Watcher]
    next_page_token: str
    def __init__(self, watchers: _Optional[_Iterable[_Union[Watcher, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListWatcherVersionsRequest(_message.Message):
    __slots__ = ("watcher_id", "page_size", "page_token")
    WATCHER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    watcher_id: str
    page_size: int
    page_token: str
    def __init__(self, watcher_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWatcherVersionsResponse(_message.Message):
    __slots__ = ("watcher_versions", "next_page_token")
    WATCHER_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    watcher_versions: _containers.RepeatedCompositeFieldContainer[WatcherVersion]
    next_page_token: str
    def __init__(self, watcher_versions: _Optional[_Iterable[_Union[WatcherVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetWatcherVersionRequest(_message.Message):
    __slots__ = ("watcher_version_id",)
    WATCHER_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    watcher_version_id: str
    def __init__(self, watcher_version_id: _Optional[str] = ...) -> None: ...

class GetWatcherVersionResponse(_message.Message):
    __slots__ = ("watcher_version",)
    WATCHER_VERSION_FIELD_NUMBER: _ClassVar[int]
    watcher_version: WatcherVersion
    def __init__(self, watcher_version: _Optional[_Union[WatcherVersion, _Mapping]] = ...) -> None: ...

class CreateEventClassifierRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "slug", "name", "description", "watcher_id", "definition_json")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    WATCHER_ID_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    slug: str
    name: str
    description: str
    watcher_id: str
    definition_json: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., slug: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., watcher_id: _Optional[str] = ..., definition_json: _Optional[str] = ...) -> None: ...

class CreateEventClassifierResponse(_message.Message):
    __slots__ = ("event_classifier",)
    EVENT_CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    event_classifier: EventClassifier
    def __init__(self, event_classifier: _Optional[_Union[EventClassifier, _Mapping]] = ...) -> None: ...

class GetEventClassifierRequest(_message.Message):
    __slots__ = ("event_classifier_id",)
    EVENT_CLASSIFIER_ID_FIELD_NUMBER: _ClassVar[int]
    event_classifier_id: str
    def __init__(self, event_classifier_id: _Optional[str] = ...) -> None: ...

class GetEventClassifierResponse(_message.Message):
    __slots__ = ("event_classifier",)
    EVENT_CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    event_classifier: EventClassifier
    def __init__(self, event_classifier: _Optional[_Union[EventClassifier, _Mapping]] = ...) -> None: ...

class UpdateEventClassifierRequest(_message.Message):
    __slots__ = ("event_classifier_id", "name", "description", "watcher_id", "definition_json")
    EVENT_CLASSIFIER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    WATCHER_ID_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    event_classifier_id: str
    name: str
    description: str
    watcher_id: str
    definition_json: str
    def __init__(self, event_classifier_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., watcher_id: _Optional[str] = ..., definition_json: _Optional[str] = ...) -> None: ...

class UpdateEventClassifierResponse(_message.Message):
    __slots__ = ("event_classifier",)
    EVENT_CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    event_classifier: EventClassifier
    def __init__(self, event_classifier: _Optional[_Union[EventClassifier, _Mapping]] = ...) -> None: ...

class ArchiveEventClassifierRequest(_message.Message):
    __slots__ = ("event_classifier_id",)
    EVENT_CLASSIFIER_ID_FIELD_NUMBER: _ClassVar[int]
    event_classifier_id: str
    def __init__(self, event_classifier_id: _Optional[str] = ...) -> None: ...

class ArchiveEventClassifierResponse(_message.Message):
    __slots__ = ("event_classifier",)
    EVENT_CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    event_classifier: EventClassifier
    def __init__(self, event_classifier: _Optional[_Union[EventClassifier, _Mapping]] = ...) -> None: ...

class ListEventClassifiersRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "include_archived", "page_size", "page_token")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    include_archived: bool
    page_size: int
    page_token: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., include_archived: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEventClassifiersResponse(_message.Message):
    __slots__ = ("event_classifiers", "next_page_token")
    EVENT_CLASSIFIERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    event_classifiers: _containers.RepeatedCompositeFieldContainer[EventClassifier]
    next_page_token: str
    def __init__(self, event_classifiers: _Optional[_Iterable[_Union[EventClassifier, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class InstallAgentFromTemplateRequest(_message.Message):
    __slots__ = ("template_agent_id", "target_organization_id")
    TEMPLATE_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    template_agent_id: str
    target_organization_id: str
    def __init__(self, template_agent_id: _Optional[str] = ..., target_organization_id: _Optional[str] = ...) -> None: ...

class InstallAgentFromTemplateResponse(_message.Message):
    __slots__ = ("agent", "created", "counts")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    agent: _resources_pb2.Agent
    created: bool
    counts: SchemaObjectCounts
    def __init__(self, agent: _Optional[_Union[_resources_pb2.Agent, _Mapping]] = ..., created: _Optional[bool] = ..., counts: _Optional[_Union[SchemaObjectCounts, _Mapping]] = ...) -> None: ...

class ResyncInstalledAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class ResyncInstalledAgentResponse(_message.Message):
    __slots__ = ("agent", "created", "updated", "archived", "watcher_versions_created")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    WATCHER_VERSIONS_CREATED_FIELD_NUMBER: _ClassVar[int]
    agent: _resources_pb2.Agent
    created: SchemaObjectCounts
    updated: SchemaObjectCounts
    archived: SchemaObjectCounts
    watcher_versions_created: int
    def __init__(self, agent: _Optional[_Union[_resources_pb2.Agent, _Mapping]] = ..., created: _Optional[_Union[SchemaObjectCounts, _Mapping]] = ..., updated: _Optional[_Union[SchemaObjectCounts, _Mapping]] = ..., archived: _Optional[_Union[SchemaObjectCounts, _Mapping]] = ..., watcher_versions_created: _Optional[int] = ...) -> None: ...

class UninstallAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class UninstallAgentResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: SchemaObjectCounts
    def __init__(self, removed: _Optional[_Union[SchemaObjectCounts, _Mapping]] = ...) -> None: ...
