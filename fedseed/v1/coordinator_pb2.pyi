from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestAuth(_message.Message):
    __slots__ = ("client_id", "nonce", "timestamp_ms", "signature", "run_id", "coordinator")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    nonce: int
    timestamp_ms: int
    signature: bytes
    run_id: str
    coordinator: str
    def __init__(self, client_id: _Optional[str] = ..., nonce: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., run_id: _Optional[str] = ..., coordinator: _Optional[str] = ...) -> None: ...

class LayoutFingerprint(_message.Message):
    __slots__ = ("spec_version", "fingerprint")
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    spec_version: str
    fingerprint: str
    def __init__(self, spec_version: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("auth", "layout", "codecs", "direction_kinds", "software")
    AUTH_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    CODECS_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_KINDS_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_FIELD_NUMBER: _ClassVar[int]
    auth: RequestAuth
    layout: LayoutFingerprint
    codecs: _containers.RepeatedScalarFieldContainer[str]
    direction_kinds: _containers.RepeatedScalarFieldContainer[str]
    software: str
    def __init__(self, auth: _Optional[_Union[RequestAuth, _Mapping]] = ..., layout: _Optional[_Union[LayoutFingerprint, _Mapping]] = ..., codecs: _Optional[_Iterable[str]] = ..., direction_kinds: _Optional[_Iterable[str]] = ..., software: _Optional[str] = ...) -> None: ...

class RunConfig(_message.Message):
    __slots__ = ("run_id", "strategy", "config_json", "direction_kind", "codec", "last_round", "client_index", "coordinator")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_KIND_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    LAST_ROUND_FIELD_NUMBER: _ClassVar[int]
    CLIENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    strategy: str
    config_json: str
    direction_kind: str
    codec: str
    last_round: int
    client_index: int
    coordinator: str
    def __init__(self, run_id: _Optional[str] = ..., strategy: _Optional[str] = ..., config_json: _Optional[str] = ..., direction_kind: _Optional[str] = ..., codec: _Optional[str] = ..., last_round: _Optional[int] = ..., client_index: _Optional[int] = ..., coordinator: _Optional[str] = ...) -> None: ...

class JoinReply(_message.Message):
    __slots__ = ("run", "admitted")
    RUN_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    run: RunConfig
    admitted: bool
    def __init__(self, run: _Optional[_Union[RunConfig, _Mapping]] = ..., admitted: _Optional[bool] = ...) -> None: ...

class FetchTaskRequest(_message.Message):
    __slots__ = ("auth", "applied_round", "wait_ms", "state_checksum", "held_round")
    AUTH_FIELD_NUMBER: _ClassVar[int]
    APPLIED_ROUND_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    STATE_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    HELD_ROUND_FIELD_NUMBER: _ClassVar[int]
    auth: RequestAuth
    applied_round: int
    wait_ms: int
    state_checksum: bytes
    held_round: int
    def __init__(self, auth: _Optional[_Union[RequestAuth, _Mapping]] = ..., applied_round: _Optional[int] = ..., wait_ms: _Optional[int] = ..., state_checksum: _Optional[bytes] = ..., held_round: _Optional[int] = ...) -> None: ...

class RoundTask(_message.Message):
    __slots__ = ("round", "lr", "broadcast", "deadline_ms", "state_checksum", "private")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    STATE_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    round: int
    lr: float
    broadcast: bytes
    deadline_ms: int
    state_checksum: bytes
    private: PrivateRound
    def __init__(self, round: _Optional[int] = ..., lr: _Optional[float] = ..., broadcast: _Optional[bytes] = ..., deadline_ms: _Optional[int] = ..., state_checksum: _Optional[bytes] = ..., private: _Optional[_Union[PrivateRound, _Mapping]] = ...) -> None: ...

class PrivateRound(_message.Message):
    __slots__ = ("attempt", "length", "levels", "noise_levels")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    NOISE_LEVELS_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    length: int
    levels: int
    noise_levels: float
    def __init__(self, attempt: _Optional[int] = ..., length: _Optional[int] = ..., levels: _Optional[int] = ..., noise_levels: _Optional[float] = ...) -> None: ...

class SyncNeeded(_message.Message):
    __slots__ = ("last_round",)
    LAST_ROUND_FIELD_NUMBER: _ClassVar[int]
    last_round: int
    def __init__(self, last_round: _Optional[int] = ...) -> None: ...

class Wait(_message.Message):
    __slots__ = ("retry_after_ms",)
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    retry_after_ms: int
    def __init__(self, retry_after_ms: _Optional[int] = ...) -> None: ...

class Finished(_message.Message):
    __slots__ = ("final_round", "final_checksum")
    FINAL_ROUND_FIELD_NUMBER: _ClassVar[int]
    FINAL_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    final_round: int
    final_checksum: bytes
    def __init__(self, final_round: _Optional[int] = ..., final_checksum: _Optional[bytes] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("round", "wait", "finished", "sync", "updates")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    round: RoundTask
    wait: Wait
    finished: Finished
    sync: SyncNeeded
    updates: _containers.RepeatedCompositeFieldContainer[GlobalUpdate]
    def __init__(self, round: _Optional[_Union[RoundTask, _Mapping]] = ..., wait: _Optional[_Union[Wait, _Mapping]] = ..., finished: _Optional[_Union[Finished, _Mapping]] = ..., sync: _Optional[_Union[SyncNeeded, _Mapping]] = ..., updates: _Optional[_Iterable[_Union[GlobalUpdate, _Mapping]]] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("auth", "round", "payload", "num_samples", "start_checksum", "train_loss", "skipped_steps")
    AUTH_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    START_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_STEPS_FIELD_NUMBER: _ClassVar[int]
    auth: RequestAuth
    round: int
    payload: bytes
    num_samples: int
    start_checksum: bytes
    train_loss: float
    skipped_steps: int
    def __init__(self, auth: _Optional[_Union[RequestAuth, _Mapping]] = ..., round: _Optional[int] = ..., payload: _Optional[bytes] = ..., num_samples: _Optional[int] = ..., start_checksum: _Optional[bytes] = ..., train_loss: _Optional[float] = ..., skipped_steps: _Optional[int] = ...) -> None: ...

class UpdateReply(_message.Message):
    __slots__ = ("round",)
    ROUND_FIELD_NUMBER: _ClassVar[int]
    round: int
    def __init__(self, round: _Optional[int] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("auth", "from_round", "merged")
    AUTH_FIELD_NUMBER: _ClassVar[int]
    FROM_ROUND_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    auth: RequestAuth
    from_round: int
    merged: bool
    def __init__(self, auth: _Optional[_Union[RequestAuth, _Mapping]] = ..., from_round: _Optional[int] = ..., merged: _Optional[bool] = ...) -> None: ...

class RelayedResult(_message.Message):
    __slots__ = ("client", "num_samples", "payload")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    client: int
    num_samples: int
    payload: bytes
    def __init__(self, client: _Optional[int] = ..., num_samples: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class GlobalUpdate(_message.Message):
    __slots__ = ("round", "kind", "seeds", "coefs", "starts", "stops", "pool_indices", "checksum", "merged", "first_round", "lr", "results", "own_result_omitted")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    COEFS_FIELD_NUMBER: _ClassVar[int]
    STARTS_FIELD_NUMBER: _ClassVar[int]
    STOPS_FIELD_NUMBER: _ClassVar[int]
    POOL_INDICES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    FIRST_ROUND_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    OWN_RESULT_OMITTED_FIELD_NUMBER: _ClassVar[int]
    round: int
    kind: str
    seeds: _containers.RepeatedScalarFieldContainer[int]
    coefs: bytes
    starts: _containers.RepeatedScalarFieldContainer[int]
    stops: _containers.RepeatedScalarFieldContainer[int]
    pool_indices: _containers.RepeatedScalarFieldContainer[int]
    checksum: bytes
    merged: bool
    first_round: int
    lr: float
    results: _containers.RepeatedCompositeFieldContainer[RelayedResult]
    own_result_omitted: bool
    def __init__(self, round: _Optional[int] = ..., kind: _Optional[str] = ..., seeds: _Optional[_Iterable[int]] = ..., coefs: _Optional[bytes] = ..., starts: _Optional[_Iterable[int]] = ..., stops: _Optional[_Iterable[int]] = ..., pool_indices: _Optional[_Iterable[int]] = ..., checksum: _Optional[bytes] = ..., merged: _Optional[bool] = ..., first_round: _Optional[int] = ..., lr: _Optional[float] = ..., results: _Optional[_Iterable[_Union[RelayedResult, _Mapping]]] = ..., own_result_omitted: _Optional[bool] = ...) -> None: ...

class SecAggKeys(_message.Message):
    __slots__ = ("cipher_key", "mask_key")
    CIPHER_KEY_FIELD_NUMBER: _ClassVar[int]
    MASK_KEY_FIELD_NUMBER: _ClassVar[int]
    cipher_key: bytes
    mask_key: bytes
    def __init__(self, cipher_key: _Optional[bytes] = ..., mask_key: _Optional[bytes] = ...) -> None: ...

class AdvertisedKeys(_message.Message):
    __slots__ = ("client", "keys")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    client: int
    keys: SecAggKeys
    def __init__(self, client: _Optional[int] = ..., keys: _Optional[_Union[SecAggKeys, _Mapping]] = ...) -> None: ...

class Roster(_message.Message):
    __slots__ = ("clients",)
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    clients: _containers.RepeatedCompositeFieldContainer[AdvertisedKeys]
    def __init__(self, clients: _Optional[_Iterable[_Union[AdvertisedKeys, _Mapping]]] = ...) -> None: ...

class EncryptedShare(_message.Message):
    __slots__ = ("peer", "ciphertext")
    PEER_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    peer: int
    ciphertext: bytes
    def __init__(self, peer: _Optional[int] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class ShareBundle(_message.Message):
    __slots__ = ("shares",)
    SHARES_FIELD_NUMBER: _ClassVar[int]
    shares: _containers.RepeatedCompositeFieldContainer[EncryptedShare]
    def __init__(self, shares: _Optional[_Iterable[_Union[EncryptedShare, _Mapping]]] = ...) -> None: ...

class Survivors(_message.Message):
    __slots__ = ("submitted", "dropped")
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    submitted: _containers.RepeatedScalarFieldContainer[int]
    dropped: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, submitted: _Optional[_Iterable[int]] = ..., dropped: _Optional[_Iterable[int]] = ...) -> None: ...

class SecretShare(_message.Message):
    __slots__ = ("owner", "index", "share")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    owner: int
    index: int
    share: bytes
    def __init__(self, owner: _Optional[int] = ..., index: _Optional[int] = ..., share: _Optional[bytes] = ...) -> None: ...

class UnmaskBundle(_message.Message):
    __slots__ = ("shares",)
    SHARES_FIELD_NUMBER: _ClassVar[int]
    shares: _containers.RepeatedCompositeFieldContainer[SecretShare]
    def __init__(self, shares: _Optional[_Iterable[_Union[SecretShare, _Mapping]]] = ...) -> None: ...

class SecAggRequest(_message.Message):
    __slots__ = ("auth", "round", "attempt", "wait_ms", "keys", "shares", "await_survivors", "unmask")
    AUTH_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    AWAIT_SURVIVORS_FIELD_NUMBER: _ClassVar[int]
    UNMASK_FIELD_NUMBER: _ClassVar[int]
    auth: RequestAuth
    round: int
    attempt: int
    wait_ms: int
    keys: SecAggKeys
    shares: ShareBundle
    await_survivors: bool
    unmask: UnmaskBundle
    def __init__(self, auth: _Optional[_Union[RequestAuth, _Mapping]] = ..., round: _Optional[int] = ..., attempt: _Optional[int] = ..., wait_ms: _Optional[int] = ..., keys: _Optional[_Union[SecAggKeys, _Mapping]] = ..., shares: _Optional[_Union[ShareBundle, _Mapping]] = ..., await_survivors: _Optional[bool] = ..., unmask: _Optional[_Union[UnmaskBundle, _Mapping]] = ...) -> None: ...

class SecAggReply(_message.Message):
    __slots__ = ("roster", "inbox", "survivors", "wait", "done")
    ROSTER_FIELD_NUMBER: _ClassVar[int]
    INBOX_FIELD_NUMBER: _ClassVar[int]
    SURVIVORS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    roster: Roster
    inbox: ShareBundle
    survivors: Survivors
    wait: Wait
    done: bool
    def __init__(self, roster: _Optional[_Union[Roster, _Mapping]] = ..., inbox: _Optional[_Union[ShareBundle, _Mapping]] = ..., survivors: _Optional[_Union[Survivors, _Mapping]] = ..., wait: _Optional[_Union[Wait, _Mapping]] = ..., done: _Optional[bool] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("auth",)
    AUTH_FIELD_NUMBER: _ClassVar[int]
    auth: RequestAuth
    def __init__(self, auth: _Optional[_Union[RequestAuth, _Mapping]] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("server_time_ms", "current_round")
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ROUND_FIELD_NUMBER: _ClassVar[int]
    server_time_ms: int
    current_round: int
    def __init__(self, server_time_ms: _Optional[int] = ..., current_round: _Optional[int] = ...) -> None: ...
