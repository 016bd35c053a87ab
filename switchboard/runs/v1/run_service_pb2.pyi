import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Lane(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LANE_UNSPECIFIED: _ClassVar[Lane]
    LANE_SYNC: _ClassVar[Lane]
    LANE_ACTION: _ClassVar[Lane]
    LANE_EMBED_BACKFILL: _ClassVar[Lane]
    LANE_AUTH: _ClassVar[Lane]
    LANE_WATCHER: _ClassVar[Lane]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_PENDING: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_COMPLETED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
    RUN_STATUS_TIMEOUT: _ClassVar[RunStatus]
LANE_UNSPECIFIED: Lane
LANE_SYNC: Lane
LANE_ACTION: Lane
LANE_EMBED_BACKFILL: Lane
LANE_AUTH: Lane
LANE_WATCHER: Lane
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_PENDING: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_COMPLETED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CANCELLED: RunStatus
RUN_STATUS_TIMEOUT: RunStatus

class Run(_message.Message):
    __slots__ = ("id", "organization_id", "lane", "subject_id", "payload_json", "priority", "status", "attempt", "max_attempts", "idempotency_key", "run_after", "claimed_by", "claimed_at", "last_heartbeat_at", "cancel_requested", "result_json", "error_message", "created_at", "updated_at", "finished_at", "agent_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RUN_AFTER_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_BY_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization_id: str
    lane: Lane
    subject_id: str
    payload_json: str
    priority: int
    status: RunStatus
    attempt: int
    max_attempts: int
    idempotency_key: str
    run_after: _timestamp_pb2.Timestamp
    claimed_by: str
    claimed_at: _timestamp_pb2.Timestamp
    last_heartbeat_at: _timestamp_pb2.Timestamp
    cancel_requested: bool
    result_json: str
    error_message: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    agent_id: str
    def __init__(self, id: _Optional[str] = ..., organization_id: _Optional[str] = ..., lane: _Optional[_Union[Lane, str]] = ..., subject_id: _Optional[str] = ..., payload_json: _Optional[str] = ..., priority: _Optional[int] = ..., status: _Optional[_Union[RunStatus, str]] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., run_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., claimed_by: _Optional[str] = ..., claimed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_requested: _Optional[bool] = ..., result_json: _Optional[str] = ..., error_message: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agent_id: _Optional[str] = ...) -> None: ...

class EnqueueRunRequest(_message.Message):
    __slots__ = ("organization_id", "lane", "subject_id", "payload_json", "priority", "run_after", "idempotency_key", "max_attempts", "agent_id")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RUN_AFTER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    lane: Lane
    subject_id: str
    payload_json: str
    priority: int
    run_after: _timestamp_pb2.Timestamp
    idempotency_key: str
    max_attempts: int
    agent_id: str
    def __init__(self, organization_id: _Optional[str] = ..., lane: _Optional[_Union[Lane, str]] = ..., subject_id: _Optional[str] = ..., payload_json: _Optional[str] = ..., priority: _Optional[int] = ..., run_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., max_attempts: _Optional[int] = ..., agent_id: _Optional[str] = ...) -> None: ...

class EnqueueRunResponse(_message.Message):
    __slots__ = ("run", "created")
    RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    run: Run
    created: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ClaimRunRequest(_message.Message):
    __slots__ = ("worker_id", "lanes")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LANES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    lanes: _containers.RepeatedScalarFieldContainer[Lane]
    def __init__(self, worker_id: _Optional[str] = ..., lanes: _Optional[_Iterable[_Union[Lane, str]]] = ...) -> None: ...

class ClaimRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("run_id", "worker_id", "attempt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    worker_id: str
    attempt: int
    def __init__(self, run_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("cancel_requested",)
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    cancel_requested: bool
    def __init__(self, cancel_requested: _Optional[bool] = ...) -> None: ...

class CompleteRunRequest(_message.Message):
    __slots__ = ("run_id", "worker_id", "attempt", "result_json")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    worker_id: str
    attempt: int
    result_json: str
    def __init__(self, run_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., attempt: _Optional[int] = ..., result_json: _Optional[str] = ...) -> None: ...

class CompleteRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class FailRunRequest(_message.Message):
    __slots__ = ("run_id", "worker_id", "attempt", "error_message", "retryable")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    worker_id: str
    attempt: int
    error_message: str
    retryable: bool
    def __init__(self, run_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., attempt: _Optional[int] = ..., error_message: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...

class FailRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("organization_id", "lanes", "statuses", "subject_id", "page_size", "page_token", "agent_id")
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    LANES_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    organization_id: str
    lanes: _containers.RepeatedScalarFieldContainer[Lane]
    statuses: _containers.RepeatedScalarFieldContainer[RunStatus]
    subject_id: str
    page_size: int
    page_token: str
    agent_id: str
    def __init__(self, organization_id: _Optional[str] = ..., lanes: _Optional[_Iterable[_Union[Lane, str]]] = ..., statuses: _Optional[_Iterable[_Union[RunStatus, str]]] = ..., subject_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReapStaleRunsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReapStaleRunsResponse(_message.Message):
    __slots__ = ("acquired", "reaped", "retries_created")
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    REAPED_FIELD_NUMBER: _ClassVar[int]
    RETRIES_CREATED_FIELD_NUMBER: _ClassVar[int]
    acquired: bool
    reaped: int
    retries_created: int
    def __init__(self, acquired: _Optional[bool] = ..., reaped: _Optional[int] = ..., retries_created: _Optional[int] = ...) -> None: ...

class HeldRun(_message.Message):
    __slots__ = ("run_id", "attempt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class SessionOpen(_message.Message):
    __slots__ = ("worker_id", "lanes", "capacity", "held", "batches")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LANES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    lanes: _containers.RepeatedScalarFieldContainer[Lane]
    capacity: int
    held: _containers.RepeatedCompositeFieldContainer[HeldRun]
    batches: bool
    def __init__(self, worker_id: _Optional[str] = ..., lanes: _Optional[_Iterable[_Union[Lane, str]]] = ..., capacity: _Optional[int] = ..., held: _Optional[_Iterable[_Union[HeldRun, _Mapping]]] = ..., batches: _Optional[bool] = ...) -> None: ...

class SessionComplete(_message.Message):
    __slots__ = ("run_id", "attempt", "result_json")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    result_json: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., result_json: _Optional[str] = ...) -> None: ...

class SessionFail(_message.Message):
    __slots__ = ("run_id", "attempt", "error_message", "retryable")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    error_message: str
    retryable: bool
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., error_message: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...

class SessionRelease(_message.Message):
    __slots__ = ("run_id", "attempt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class SessionStopTaking(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionReports(_message.Message):
    __slots__ = ("complete", "fail", "release")
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    FAIL_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    complete: _containers.RepeatedCompositeFieldContainer[SessionComplete]
    fail: _containers.RepeatedCompositeFieldContainer[SessionFail]
    release: _containers.RepeatedCompositeFieldContainer[SessionRelease]
    def __init__(self, complete: _Optional[_Iterable[_Union[SessionComplete, _Mapping]]] = ..., fail: _Optional[_Iterable[_Union[SessionFail, _Mapping]]] = ..., release: _Optional[_Iterable[_Union[SessionRelease, _Mapping]]] = ...) -> None: ...

class WorkSessionRequest(_message.Message):
    __slots__ = ("open", "complete", "fail", "release", "stop_taking", "reports")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    FAIL_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    STOP_TAKING_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    open: SessionOpen
    complete: SessionComplete
    fail: SessionFail
    release: SessionRelease
    stop_taking: SessionStopTaking
    reports: SessionReports
    def __init__(self, open: _Optional[_Union[SessionOpen, _Mapping]] = ..., complete: _Optional[_Union[SessionComplete, _Mapping]] = ..., fail: _Optional[_Union[SessionFail, _Mapping]] = ..., release: _Optional[_Union[SessionRelease, _Mapping]] = ..., stop_taking: _Optional[_Union[SessionStopTaking, _Mapping]] = ..., reports: _Optional[_Union[SessionReports, _Mapping]] = ...) -> None: ...

class SessionOpened(_message.Message):
    __slots__ = ("session_id", "adopted")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ADOPTED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    adopted: _containers.RepeatedCompositeFieldContainer[HeldRun]
    def __init__(self, session_id: _Optional[str] = ..., adopted: _Optional[_Iterable[_Union[HeldRun, _Mapping]]] = ...) -> None: ...

class SessionLease(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class SessionAck(_message.Message):
    __slots__ = ("run_id", "attempt", "code", "message", "status")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    code: int
    message: str
    status: RunStatus
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ...) -> None: ...

class SessionCancel(_message.Message):
    __slots__ = ("run_id", "attempt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class SessionDrain(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionLeases(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class SessionAcks(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[SessionAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[SessionAck, _Mapping]]] = ...) -> None: ...

class WorkSessionResponse(_message.Message):
    __slots__ = ("opened", "lease", "ack", "cancel", "drain", "leases", "acks")
    OPENED_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    opened: SessionOpened
    lease: SessionLease
    ack: SessionAck
    cancel: SessionCancel
    drain: SessionDrain
    leases: SessionLeases
    acks: SessionAcks
    def __init__(self, opened: _Optional[_Union[SessionOpened, _Mapping]] = ..., lease: _Optional[_Union[SessionLease, _Mapping]] = ..., ack: _Optional[_Union[SessionAck, _Mapping]] = ..., cancel: _Optional[_Union[SessionCancel, _Mapping]] = ..., drain: _Optional[_Union[SessionDrain, _Mapping]] = ..., leases: _Optional[_Union[SessionLeases, _Mapping]] = ..., acks: _Optional[_Union[SessionAcks, _Mapping]] = ...) -> None: ...
