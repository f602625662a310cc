"""`fedseed server --config server.toml`: the run tables plus a [server] table, checked key by key."""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from fedseed.config import LR_RELATIVE_NEEDS_MODEL, Config, ConfigError, build_config, fill_section, load_document
from fedseed.private import check_private_key
from fedseed.transport import is_loopback


@dataclass
class ServerSection:
    address: str = "127.0.0.1:50051"  # port 0: any free port, written to <out>/server.port
    name: str = ""  # this coordinator's identity, signed into every request (default: see coordinator_identity)
    out: str = "runs/server"  # log.sqlite, metrics.jsonl, summary.json (relative to the file when set)
    clients: str = ""  # allow-list JSON from `fedseed certs --clients` ({"clients": [{id, public_key, index}]})
    tls_cert: str = ""  # server certificate + key (PEM); required outside loopback unless insecure
    tls_key: str = ""
    client_ca: str = ""  # set: mutual TLS, clients must present a certificate from this CA
    insecure: bool = False  # allow plaintext on a non-loopback address (never for real deployments)
    hold_model: bool = True  # False: log only -- no weights held, checksums taken from the clients
    min_clients: int = 0  # clients that must be online to open a round (0: federation.clients_per_round)
    quorum: int = 0  # results that close a round at its deadline (0: half of clients_per_round, at least 1)
    round_deadline_s: float = 600.0
    heartbeat_timeout_s: float = 60.0  # a client silent this long is offline
    max_message_bytes: int = 0  # largest request read (0: the run's largest legal request + headroom, ~4 KiB)
    max_concurrent_rpcs: int = 0  # calls served at once, beyond them RESOURCE_EXHAUSTED (0: 4 per client + 32)
    max_long_polls: int = 2  # open FetchTask calls per client
    sync_per_minute: float = 30.0  # SyncLog calls a client may make per minute on average ...
    sync_burst: int = 5  # ... and at once
    max_wait_ms: int = 30_000  # longest long-poll the coordinator holds
    linger_s: float = 30.0  # after the last round, wait at most this long for admitted clients to learn it


def coordinator_identity(sec: ServerSection) -> str:
    """What names this coordinator in every signed request: server.name; else the SHA-256 fingerprint of its TLS
    certificate, which only the holder of its key can present (and which a client may pin); else, on plaintext
    (loopback), its configured address. It stays the same across restarts, so clients' retries keep working."""
    if sec.name:
        return sec.name
    if sec.tls_cert:
        cert = x509.load_pem_x509_certificate(pathlib.Path(sec.tls_cert).read_bytes())
        return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()
    return f"plaintext {sec.address}"


def validate_server(sec: ServerSection, cfg: Config) -> None:
    if cfg.strategy.lr_relative and not sec.hold_model:
        raise ConfigError(f"config key 'strategy.lr_relative': {LR_RELATIVE_NEEDS_MODEL}")
    host, sep, port = sec.address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"config key 'server.address' must be HOST:PORT, got {sec.address!r}")
    if not sec.clients:
        raise ConfigError("config key 'server.clients' must name the allow-list JSON (fedseed certs --clients)")
    if not pathlib.Path(sec.clients).is_file():
        raise ConfigError(f"config key 'server.clients': file {sec.clients!r} does not exist")
    if bool(sec.tls_cert) != bool(sec.tls_key):
        raise ConfigError("config keys 'server.tls_cert' and 'server.tls_key' must be given together")
    for key in ("tls_cert", "tls_key", "client_ca"):
        path = getattr(sec, key)
        if path and not pathlib.Path(path).is_file():
            raise ConfigError(f"config key 'server.{key}': file {path!r} does not exist")
    if sec.tls_key:
        try:
            check_private_key(sec.tls_key)
        except ValueError as e:
            raise ConfigError(f"config key 'server.tls_key': {e}") from None
    if len(sec.name) > 128 or not sec.name.isprintable():
        raise ConfigError("config key 'server.name' must be at most 128 printable characters")
    if sec.tls_cert:
        try:
            coordinator_identity(sec)
        except ValueError as e:
            raise ConfigError(f"config key 'server.tls_cert': {sec.tls_cert} is not a PEM certificate: {e}") from None
    if sec.client_ca and not sec.tls_cert:
        raise ConfigError("config key 'server.client_ca' (mutual TLS) needs server.tls_cert and server.tls_key")
    if not sec.tls_cert and not is_loopback(sec.address) and not sec.insecure:
        raise ConfigError(f"config key 'server.address': {sec.address} is not loopback, so TLS is required "
                          "(set server.tls_cert and server.tls_key, or server.insecure = true)")
    n = cfg.federation.num_clients
    checks = [
        ("min_clients", 0 <= sec.min_clients <= n, f"must be between 0 and federation.num_clients ({n})"),
        ("quorum", 0 <= sec.quorum <= cfg.federation.clients_per_round,
         "must be between 0 and federation.clients_per_round"),
        ("round_deadline_s", math.isfinite(sec.round_deadline_s) and sec.round_deadline_s > 0, "must be > 0"),
        ("heartbeat_timeout_s", math.isfinite(sec.heartbeat_timeout_s) and sec.heartbeat_timeout_s > 0,
         "must be > 0"),
        ("max_message_bytes", sec.max_message_bytes == 0 or 1024 <= sec.max_message_bytes <= 1 << 30,
         "must be 0 (derived from the run) or between 1 KiB and 1 GiB"),
        ("max_concurrent_rpcs", 0 <= sec.max_concurrent_rpcs <= 1_000_000, "must be between 0 and 1000000"),
        ("max_long_polls", 1 <= sec.max_long_polls <= 100_000, "must be between 1 and 100000"),
        ("sync_per_minute", math.isfinite(sec.sync_per_minute) and sec.sync_per_minute > 0, "must be > 0"),
        ("sync_burst", 1 <= sec.sync_burst <= 1_000_000, "must be between 1 and 1000000"),
        ("max_wait_ms", 0 <= sec.max_wait_ms <= 600_000, "must be between 0 and 600000"),
        ("linger_s", math.isfinite(sec.linger_s) and sec.linger_s >= 0, "must be >= 0"),
    ]
    for key, ok, msg in checks:
        if not ok:
            raise ConfigError(f"config key 'server.{key}' {msg}")


def load_server_config(path: str, overrides: list[str] | None = None) -> tuple[Config, ServerSection]:
    doc = load_document(path, overrides)
    cfg = build_config(doc)
    sec = fill_section(ServerSection, doc, "server")
    base = pathlib.Path(path).parent
    for key in ("clients", "tls_cert", "tls_key", "client_ca"):  # relative paths are relative to the file
        value = getattr(sec, key)
        if value and not pathlib.Path(value).is_absolute() and (base / value).exists():
            setattr(sec, key, str(base / value))
    if "out" in doc.get("server", {}) and not pathlib.Path(sec.out).is_absolute():
        sec.out = str(base / sec.out)  # a folder the file names is relative to the file too
    validate_server(sec, cfg)
    return cfg, sec
