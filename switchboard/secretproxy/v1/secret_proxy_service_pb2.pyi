import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EgressAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EGRESS_ACTION_UNSPECIFIED: _ClassVar[EgressAction]
    EGRESS_ACTION_ALLOW: _ClassVar[EgressAction]
    EGRESS_ACTION_DENY: _ClassVar[EgressAction]
EGRESS_ACTION_UNSPECIFIED: EgressAction
EGRESS_ACTION_ALLOW: EgressAction
EGRESS_ACTION_DENY: EgressAction

class Secret(_message.Message):
    __slots__ = ("id", "organization_id", "agent_id", "name", "key_id", "created_at", "rotated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ROTATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    agent_id: str
    name: str
    key_id: str
    created_at: _timestamp_pb2.Timestamp
    rotated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., name: _Optional[str] = ..., key_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rotated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProviderCredential(_message.Message):
    __slots__ = ("id", "organization_id", "provider", "priority", "key_id", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    provider: str
    priority: int
    key_id: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., provider: _Optional[str] = ..., priority: _Optional[int] = ..., key_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EgressRule(_message.Message):
    __slots__ = ("action", "host_pattern", "methods", "path_prefix")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    HOST_PATTERN_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    action: EgressAction
    host_pattern: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    path_prefix: str
    def __init__(self, action: _Optional[_Union[EgressAction, str]] = ..., host_pattern: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ..., path_prefix: _Optional[str] = ...) -> None: ...

class EgressPolicy(_message.Message):
    __slots__ = ("organization_id", "rules", "policy_hash", "updated_at")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    rules: _containers.RepeatedCompositeFieldContainer[EgressRule]
    policy_hash: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, organization_id: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[EgressRule, _Mapping]]] = ..., policy_hash: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HttpHeader(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class PutSecretRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "name", "value")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    name: str
    value: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class PutSecretResponse(_message.Message):
    __slots__ = ("secret_id", "placeholder")
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEHOLDER_FIELD_NUMBER: _ClassVar[int]
    secret_id: str
    placeholder: str
    def __init__(self, secret_id: _Optional[str] = ..., placeholder: _Optional[str] = ...) -> None: ...

class RotateSecretRequest(_message.Message):
    __slots__ = ("secret_id", "value")
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    secret_id: str
    value: str
    def __init__(self, secret_id: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class RotateSecretResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: Secret
    def __init__(self, secret: _Optional[_Union[Secret, _Mapping]] = ...) -> None: ...

class DeleteSecretRequest(_message.Message):
    __slots__ = ("secret_id",)
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    secret_id: str
    def __init__(self, secret_id: _Optional[str] = ...) -> None: ...

class DeleteSecretResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: Secret
    def __init__(self, secret: _Optional[_Union[Secret, _Mapping]] = ...) -> None: ...

class ListSecretsRequest(_message.Message):
    __slots__ = ("organization_id", "agent_id", "page_size", "page_token")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    agent_id: str
    page_size: int
    page_token: str
    def __init__(self, organization_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSecretsResponse(_message.Message):
    __slots__ = ("secrets", "next_page_token")
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    secrets: _containers.RepeatedCompositeFieldContainer[Secret]
    next_page_token: str
    def __init__(self, secrets: _Optional[_Iterable[_Union[Secret, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PutProviderCredentialRequest(_message.Message):
    __slots__ = ("organization_id", "provider", "value", "priority")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    provider: str
    value: str
    priority: int
    def __init__(self, organization_id: _Optional[str] = ..., provider: _Optional[str] = ..., value: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class PutProviderCredentialResponse(_message.Message):
    __slots__ = ("provider_credential",)
    PROVIDER_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    provider_credential: ProviderCredential
    def __init__(self, provider_credential: _Optional[_Union[ProviderCredential, _Mapping]] = ...) -> None: ...

class ListProviderCredentialsRequest(_message.Message):
    __slots__ = ("organization_id", "provider", "page_size", "page_token")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    provider: str
    page_size: int
    page_token: str
    def __init__(self, organization_id: _Optional[str] = ..., provider: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListProviderCredentialsResponse(_message.Message):
    __slots__ = ("provider_credentials", "next_page_token")
    PROVIDER_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    provider_credentials: _containers.RepeatedCompositeFieldContainer[ProviderCredential]
    next_page_token: str
    def __init__(self, provider_credentials: _Optional[_Iterable[_Union[ProviderCredential, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteProviderCredentialRequest(_message.Message):
    __slots__ = ("provider_credential_id",)
    PROVIDER_CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    provider_credential_id: str
    def __init__(self, provider_credential_id: _Optional[str] = ...) -> None: ...

class DeleteProviderCredentialResponse(_message.Message):
    __slots__ = ("provider_credential",)
    PROVIDER_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    provider_credential: ProviderCredential
    def __init__(self, provider_credential: _Optional[_Union[ProviderCredential, _Mapping]] = ...) -> None: ...

class SetEgressPolicyRequest(_message.Message):
    __slots__ = ("organization_id", "rules")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    rules: _containers.RepeatedCompositeFieldContainer[EgressRule]
    def __init__(self, organization_id: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[EgressRule, _Mapping]]] = ...) -> None: ...

class SetEgressPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: EgressPolicy
    def __init__(self, policy: _Optional[_Union[EgressPolicy, _Mapping]] = ...) -> None: ...

class GetEgressPolicyRequest(_message.Message):
    __slots__ = ("organization_id",)
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    def __init__(self, organization_id: _Optional[str] = ...) -> None: ...

class GetEgressPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: EgressPolicy
    def __init__(self, policy: _Optional[_Union[EgressPolicy, _Mapping]] = ...) -> None: ...

class ForwardRequestHead(_message.Message):
    __slots__ = ("method", "upstream", "path", "headers", "source_address")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    method: str
    upstream: str
    path: str
    headers: _containers.RepeatedCompositeFieldContainer[HttpHeader]
    source_address: str
    def __init__(self, method: _Optional[str] = ..., upstream: _Optional[str] = ..., path: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[HttpHeader, _Mapping]]] = ..., source_address: _Optional[str] = ...) -> None: ...

class ForwardRequestEnd(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ForwardRequest(_message.Message):
    __slots__ = ("head", "body_chunk", "end")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    BODY_CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    head: ForwardRequestHead
    body_chunk: bytes
    end: ForwardRequestEnd
    def __init__(self, head: _Optional[_Union[ForwardRequestHead, _Mapping]] = ..., body_chunk: _Optional[bytes] = ..., end: _Optional[_Union[ForwardRequestEnd, _Mapping]] = ...) -> None: ...

class ForwardResponseHead(_message.Message):
    __slots__ = ("status_code", "headers")
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    status_code: int
    headers: _containers.RepeatedCompositeFieldContainer[HttpHeader]
    def __init__(self, status_code: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[HttpHeader, _Mapping]]] = ...) -> None: ...

class ForwardResponseEnd(_message.Message):
    __slots__ = ("trailers",)
    TRAILERS_FIELD_NUMBER: _ClassVar[int]
    trailers: _containers.RepeatedCompositeFieldContainer[HttpHeader]
    def __init__(self, trailers: _Optional[_Iterable[_Union[HttpHeader, _Mapping]]] = ...) -> None: ...

class ForwardResponse(_message.Message):
    __slots__ = ("head", "body_chunk", "end")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    BODY_CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    head: ForwardResponseHead
    body_chunk: bytes
    end: ForwardResponseEnd
    def __init__(self, head: _Optional[_Union[ForwardResponseHead, _Mapping]] = ..., body_chunk: _Optional[bytes] = ..., end: _Optional[_Union[ForwardResponseEnd, _Mapping]] = ...) -> None: ...
