import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("stream", "sequence", "type", "payload_json", "created_at")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    stream: str
    sequence: int
    type: str
    payload_json: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, stream: _Optional[str] = ..., sequence: _Optional[int] = ..., type: _Optional[str] = ..., payload_json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EventsTrimmed(_message.Message):
    __slots__ = ("requested_after_sequence", "first_available_sequence")
    REQUESTED_AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FIRST_AVAILABLE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    requested_after_sequence: int
    first_available_sequence: int
    def __init__(self, requested_after_sequence: _Optional[int] = ..., first_available_sequence: _Optional[int] = ...) -> None: ...

class EventsReset(_message.Message):
    __slots__ = ("requested_after_sequence", "head_sequence")
    REQUESTED_AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    requested_after_sequence: int
    head_sequence: int
    def __init__(self, requested_after_sequence: _Optional[int] = ..., head_sequence: _Optional[int] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("stream", "organization_id", "type", "payload_json")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    stream: str
    organization_id: str
    type: str
    payload_json: str
    def __init__(self, stream: _Optional[str] = ..., organization_id: _Optional[str] = ..., type: _Optional[str] = ..., payload_json: _Optional[str] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("sequence", "created_at")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PublishStreamRequest(_message.Message):
    __slots__ = ("tag", "stream", "organization_id", "type", "payload_json")
    TAG_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    tag: int
    stream: str
    organization_id: str
    type: str
    payload_json: str
    def __init__(self, tag: _Optional[int] = ..., stream: _Optional[str] = ..., organization_id: _Optional[str] = ..., type: _Optional[str] = ..., payload_json: _Optional[str] = ...) -> None: ...

class PublishStreamResponse(_message.Message):
    __slots__ = ("tag", "sequence", "code", "message")
    TAG_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    tag: int
    sequence: int
    code: int
    message: str
    def __init__(self, tag: _Optional[int] = ..., sequence: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class EventInput(_message.Message):
    __slots__ = ("type", "payload_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    payload_json: str
    def __init__(self, type: _Optional[str] = ..., payload_json: _Optional[str] = ...) -> None: ...

class PublishBatchRequest(_message.Message):
    __slots__ = ("stream", "organization_id", "events")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    stream: str
    organization_id: str
    events: _containers.RepeatedCompositeFieldContainer[EventInput]
    def __init__(self, stream: _Optional[str] = ..., organization_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[EventInput, _Mapping]]] = ...) -> None: ...

class PublishBatchResponse(_message.Message):
    __slots__ = ("sequences", "created_at")
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedScalarFieldContainer[int]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, sequences: _Optional[_Iterable[int]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("stream", "organization_id", "after_sequence")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    stream: str
    organization_id: str
    after_sequence: int
    def __init__(self, stream: _Optional[str] = ..., organization_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "trimmed", "reset")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    event: Event
    trimmed: EventsTrimmed
    reset: EventsReset
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., trimmed: _Optional[_Union[EventsTrimmed, _Mapping]] = ..., reset: _Optional[_Union[EventsReset, _Mapping]] = ...) -> None: ...
