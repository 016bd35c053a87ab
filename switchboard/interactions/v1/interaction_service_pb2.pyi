import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Platform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLATFORM_UNSPECIFIED: _ClassVar[Platform]
    PLATFORM_SLACK: _ClassVar[Platform]
    PLATFORM_TELEGRAM: _ClassVar[Platform]

class AnswerOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANSWER_OUTCOME_UNSPECIFIED: _ClassVar[AnswerOutcome]
    ANSWER_OUTCOME_ANSWERED: _ClassVar[AnswerOutcome]
    ANSWER_OUTCOME_ALREADY_ANSWERED: _ClassVar[AnswerOutcome]
    ANSWER_OUTCOME_NOT_PENDING: _ClassVar[AnswerOutcome]
PLATFORM_UNSPECIFIED: Platform
PLATFORM_SLACK: Platform
PLATFORM_TELEGRAM: Platform
ANSWER_OUTCOME_UNSPECIFIED: AnswerOutcome
ANSWER_OUTCOME_ANSWERED: AnswerOutcome
ANSWER_OUTCOME_ALREADY_ANSWERED: AnswerOutcome
ANSWER_OUTCOME_NOT_PENDING: AnswerOutcome

class Connection(_message.Message):
    __slots__ = ("id", "organization_id", "platform", "external_id", "api_base_url", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    API_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    platform: Platform
    external_id: str
    api_base_url: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., external_id: _Optional[str] = ..., api_base_url: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QuestionOption(_message.Message):
    __slots__ = ("id", "label")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    id: str
    label: str
    def __init__(self, id: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class MessageRef(_message.Message):
    __slots__ = ("channel_id", "message_id")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    message_id: str
    def __init__(self, channel_id: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class RegisterConnectionRequest(_message.Message):
    __slots__ = ("organization_id", "platform", "external_id", "bot_token", "signing_secret", "secret_token", "api_base_url")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    BOT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    SECRET_TOKEN_FIELD_NUMBER: _ClassVar[int]
    API_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    platform: Platform
    external_id: str
    bot_token: str
    signing_secret: str
    secret_token: str
    api_base_url: str
    def __init__(self, organization_id: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., external_id: _Optional[str] = ..., bot_token: _Optional[str] = ..., signing_secret: _Optional[str] = ..., secret_token: _Optional[str] = ..., api_base_url: _Optional[str] = ...) -> None: ...

class RegisterConnectionResponse(_message.Message):
    __slots__ = ("connection", "created")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    created: bool
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetConnectionRequest(_message.Message):
    __slots__ = ("connection_id",)
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    def __init__(self, connection_id: _Optional[str] = ...) -> None: ...

class GetConnectionResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class ListConnectionsRequest(_message.Message):
    __slots__ = ("organization_id", "platform", "page_size", "page_token")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    platform: Platform
    page_size: int
    page_token: str
    def __init__(self, organization_id: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConnectionsResponse(_message.Message):
    __slots__ = ("connections", "next_page_token")
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connections: _containers.RepeatedCompositeFieldContainer[Connection]
    next_page_token: str
    def __init__(self, connections: _Optional[_Iterable[_Union[Connection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteConnectionRequest(_message.Message):
    __slots__ = ("connection_id",)
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    def __init__(self, connection_id: _Optional[str] = ...) -> None: ...

class DeleteConnectionResponse(_message.Message):
    __slots__ = ("deleted_pending_questions",)
    DELETED_PENDING_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    deleted_pending_questions: int
    def __init__(self, deleted_pending_questions: _Optional[int] = ...) -> None: ...

class VerifySlackSignatureRequest(_message.Message):
    __slots__ = ("team_id", "timestamp", "signature", "body")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    timestamp: str
    signature: str
    body: bytes
    def __init__(self, team_id: _Optional[str] = ..., timestamp: _Optional[str] = ..., signature: _Optional[str] = ..., body: _Optional[bytes] = ...) -> None: ...

class VerifySlackSignatureResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class VerifyTelegramSecretTokenRequest(_message.Message):
    __slots__ = ("connection_id", "secret_token")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    secret_token: str
    def __init__(self, connection_id: _Optional[str] = ..., secret_token: _Optional[str] = ...) -> None: ...

class VerifyTelegramSecretTokenResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class CreateQuestionRequest(_message.Message):
    __slots__ = ("organization_id", "connection_id", "agent_id", "expected_user_id", "channel_id", "text", "options", "payload_json")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    connection_id: str
    agent_id: str
    expected_user_id: str
    channel_id: str
    text: str
    options: _containers.RepeatedCompositeFieldContainer[QuestionOption]
    payload_json: str
    def __init__(self, organization_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., expected_user_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., text: _Optional[str] = ..., options: _Optional[_Iterable[_Union[QuestionOption, _Mapping]]] = ..., payload_json: _Optional[str] = ...) -> None: ...

class CreateQuestionResponse(_message.Message):
    __slots__ = ("question_id", "message_ref")
    QUESTION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_REF_FIELD_NUMBER: _ClassVar[int]
    question_id: str
    message_ref: MessageRef
    def __init__(self, question_id: _Optional[str] = ..., message_ref: _Optional[_Union[MessageRef, _Mapping]] = ...) -> None: ...

class ClaimPendingQuestionRequest(_message.Message):
    __slots__ = ("question_id", "organization_id", "connection_id", "user_id")
    QUESTION_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    question_id: str
    organization_id: str
    connection_id: str
    user_id: str
    def __init__(self, question_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class ClaimPendingQuestionResponse(_message.Message):
    __slots__ = ("claimed", "payload_json")
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    claimed: bool
    payload_json: str
    def __init__(self, claimed: _Optional[bool] = ..., payload_json: _Optional[str] = ...) -> None: ...

class AnswerQuestionRequest(_message.Message):
    __slots__ = ("question_id", "organization_id", "connection_id", "user_id", "option_id", "callback_query_id")
    QUESTION_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OPTION_ID_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    question_id: str
    organization_id: str
    connection_id: str
    user_id: str
    option_id: str
    callback_query_id: str
    def __init__(self, question_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., user_id: _Optional[str] = ..., option_id: _Optional[str] = ..., callback_query_id: _Optional[str] = ...) -> None: ...

class AnswerQuestionResponse(_message.Message):
    __slots__ = ("outcome", "event_sequence")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    EVENT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    outcome: AnswerOutcome
    event_sequence: int
    def __init__(self, outcome: _Optional[_Union[AnswerOutcome, str]] = ..., event_sequence: _Optional[int] = ...) -> None: ...

class StorePendingQuestionRequest(_message.Message):
    __slots__ = ("question_id", "organization_id", "connection_id", "expected_user_id", "agent_id", "channel_id", "message_ref", "payload_json")
    QUESTION_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_REF_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    question_id: str
    organization_id: str
    connection_id: str
    expected_user_id: str
    agent_id: str
    channel_id: str
    message_ref: MessageRef
    payload_json: str
    def __init__(self, question_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., expected_user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., message_ref: _Optional[_Union[MessageRef, _Mapping]] = ..., payload_json: _Optional[str] = ...) -> None: ...

class StorePendingQuestionResponse(_message.Message):
    __slots__ = ("created", "created_at")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    created: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, created: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeletePendingQuestionRequest(_message.Message):
    __slots__ = ("question_id", "organization_id", "connection_id", "expected_user_id")
    QUESTION_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_USER_ID_FIELD_NUMBER: _ClassVar[int]
    question_id: str
    organization_id: str
    connection_id: str
    expected_user_id: str
    def __init__(self, question_id: _Optional[str] = ..., organization_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., expected_user_id: _Optional[str] = ...) -> None: ...

class DeletePendingQuestionResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class SweepStalePendingInteractionsRequest(_message.Message):
    __slots__ = ("max_age", "limit")
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    max_age: _duration_pb2.Duration
    limit: int
    def __init__(self, max_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class SweepStalePendingInteractionsResponse(_message.Message):
    __slots__ = ("deleted_question_ids",)
    DELETED_QUESTION_IDS_FIELD_NUMBER: _ClassVar[int]
    deleted_question_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted_question_ids: _Optional[_Iterable[str]] = ...) -> None: ...
