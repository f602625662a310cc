"""`fedseed client --server HOST:PORT --config client.toml`: the [client] table, checked key by key."""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass

from fedseed.config import COMPUTE_DTYPES, ConfigError, device_problem, fill_section, read_toml
from fedseed.private import check_private_key


@dataclass
class ClientSection:
    id: str = ""  # the name in the coordinator's allow-list
    key: str = ""  # this client's Ed25519 private key (PEM, from `fedseed certs --clients`)
    ca: str = ""  # CA certificate to trust the coordinator with (TLS); empty: plaintext, loopback only
    cert: str = ""  # client certificate + key for mutual TLS
    cert_key: str = ""
    server_name: str = ""  # TLS name to check when it differs from the address's host
    coordinator: str = ""  # set: join only the coordinator of this identity (its server.name or "sha256:...")
    insecure: bool = False  # allow plaintext to a non-loopback coordinator (never for real deployments)
    out: str = ""  # metrics.jsonl and summary.json of this client (default runs/client-<id> in the working folder)
    data: str = ""  # a local JSONL file to train on instead of the run's partition
    threads: int = 0  # torch threads (0: the run's model.threads)
    # this client's own compute: forwards are local, and the state every party compares is bit-identical on any
    # device and in any forward dtype
    device: str = ""  # cpu | cuda | cuda:N (empty: the run's model.device)
    compute_dtype: str = ""  # float32 | bfloat16 | float16 | auto (empty: the run's model.compute_dtype)
    heartbeat_s: float = 20.0  # sent only after this long without any call (keep below the server's timeout)
    wait_ms: int = 20_000  # long-poll length asked of the coordinator
    reconnect_timeout_s: float = 300.0  # give up after the coordinator is unreachable this long


def load_client_config(path: str) -> ClientSection:
    p = pathlib.Path(path)
    doc = read_toml(path)
    unknown = set(doc) - {"client"}
    if unknown:
        raise ConfigError(f"unknown config section '{sorted(unknown)[0]}' (a client file holds only [client])")
    sec = fill_section(ClientSection, doc, "client")
    for key in ("key", "ca", "cert", "cert_key", "data", "out"):  # relative paths are relative to the file
        value = getattr(sec, key)
        if value and not pathlib.Path(value).is_absolute():
            setattr(sec, key, str(p.parent / value))
    if not sec.id:
        raise ConfigError("config key 'client.id' is required (the name in the coordinator's allow-list)")
    if not sec.key:
        raise ConfigError("config key 'client.key' is required (this client's Ed25519 private key)")
    if sec.device and (problem := device_problem(sec.device)):
        raise ConfigError(f"config key 'client.device' {problem}")
    if sec.compute_dtype and sec.compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"config key 'client.compute_dtype' must be one of {', '.join(COMPUTE_DTYPES)}")
    for key in ("key", "ca", "cert", "cert_key", "data"):
        value = getattr(sec, key)
        if value and not pathlib.Path(value).is_file():
            raise ConfigError(f"config key 'client.{key}': file {value!r} does not exist")
    for key in ("key", "cert_key"):  # refused before anything is started, naming the file
        if getattr(sec, key):
            try:
                check_private_key(getattr(sec, key))
            except ValueError as e:
                raise ConfigError(f"config key 'client.{key}': {e}") from None
    if bool(sec.cert) != bool(sec.cert_key):
        raise ConfigError("config keys 'client.cert' and 'client.cert_key' must be given together")
    if sec.cert and not sec.ca:
        raise ConfigError("config key 'client.cert' (mutual TLS) needs client.ca")
    for key in ("heartbeat_s", "reconnect_timeout_s"):
        v = getattr(sec, key)
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"config key 'client.{key}' must be > 0")
    if not 0 <= sec.wait_ms <= 600_000:
        raise ConfigError("config key 'client.wait_ms' must be between 0 and 600000")
    if sec.threads < 0:
        raise ConfigError("config key 'client.threads' must be >= 0")
    sec.out = sec.out or f"runs/client-{sec.id}"
    return sec
