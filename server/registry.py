"""The client registry: the allow-list (id, Ed25519 public key, federation index), admission, liveness, and
the last accepted nonce of every client, persisted so a replay is refused even across a restart."""

from __future__ import annotations

import json
import pathlib
import sqlite3
import time
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

from fedseed.auth import Verifier
from fedseed.server.rounds import Refusal

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    id TEXT PRIMARY KEY, idx INTEGER NOT NULL, last_nonce INTEGER NOT NULL, admitted INTEGER NOT NULL);
"""


@dataclass
class ClientEntry:
    id: str
    index: int
    public_key: str


def load_allow_list(path: str | pathlib.Path, num_clients: int) -> dict[str, ClientEntry]:
    """Parse and check the allow-list; raises ValueError naming the entry at fault."""
    try:
        doc = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"allow-list {path}: {e}") from None
    entries: dict[str, ClientEntry] = {}
    seen_index: set[int] = set()
    for i, item in enumerate(doc.get("clients", []) if isinstance(doc, dict) else []):
        try:
            entry = ClientEntry(str(item["id"]), int(item["index"]), str(item["public_key"]))
            if len(bytes.fromhex(entry.public_key)) != 32:
                raise ValueError("public_key must be 32 bytes of hex")
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"allow-list {path}: entry {i}: {e}") from None
        if not 0 <= entry.index < num_clients:
            raise ValueError(f"allow-list {path}: client {entry.id} has index {entry.index}, outside "
                             f"0..{num_clients - 1} (federation.num_clients)")
        if entry.id in entries or entry.index in seen_index:
            raise ValueError(f"allow-list {path}: client {entry.id} or index {entry.index} appears twice")
        entries[entry.id] = entry
        seen_index.add(entry.index)
    if not entries:
        raise ValueError(f"allow-list {path} lists no clients")
    return entries


class Registry:
    def __init__(self, db: sqlite3.Connection, entries: dict[str, ClientEntry], run_id: str,
                 coordinator: str) -> None:
        self.db = db
        self.db.executescript(SCHEMA)
        self.entries = entries
        self.by_index = {e.index: e for e in entries.values()}
        self.verifier = Verifier({cid: e.public_key for cid, e in entries.items()}, run_id=run_id,
                                 coordinator=coordinator)
        self.admitted: set[str] = set()
        for cid, nonce, admitted in db.execute("SELECT id, last_nonce, admitted FROM clients"):
            if cid in entries:
                self.verifier.last_nonce[cid] = nonce
                if admitted:
                    self.admitted.add(cid)
        self.dirty: dict[str, int] = {}  # accepted nonces not yet written
        self.last_seen: dict[str, float] = {}
        self.in_call: dict[str, int] = {}  # open long-polls count as presence

    def verify(self, request: Message, method: str) -> ClientEntry:
        """The verified client; raises fedseed.auth.AuthError (nothing recorded) for a request to refuse."""
        hello = method == "Join" and not request.layout.fingerprint  # type: ignore[attr-defined]
        cid = self.verifier.verify(request, method, int(time.time() * 1000), hello)
        self.dirty[cid] = self.verifier.last_nonce[cid]
        self.last_seen[cid] = time.monotonic()
        return self.entries[cid]

    def stage_nonces(self) -> None:
        """Write accepted nonces into the open transaction: a state change commits them with itself, so a request
        that changed state can never be replayed after a crash; read-only calls are flushed within a tick."""
        if self.dirty:
            self.db.executemany("INSERT INTO clients VALUES (?, ?, ?, 0) ON CONFLICT(id) DO UPDATE SET last_nonce = ?",
                                [(c, self.entries[c].index, n, n) for c, n in self.dirty.items()])
            self.dirty = {}

    def flush(self) -> None:
        if self.dirty:
            with self.db:
                self.stage_nonces()

    def admit(self, cid: str) -> None:
        self.admitted.add(cid)
        with self.db:
            self.stage_nonces()
            self.db.execute("UPDATE clients SET admitted = 1 WHERE id = ?", (cid,))

    def require_admitted(self, entry: ClientEntry) -> None:
        if entry.id not in self.admitted:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"client {entry.id} has not joined with a matching layout: call Join first")

    def online(self, timeout_s: float) -> list[int]:
        """Indices of admitted clients seen within timeout_s or holding a call open, sorted."""
        now = time.monotonic()
        return sorted(self.entries[c].index for c in self.admitted
                      if self.in_call.get(c, 0) > 0 or now - self.last_seen.get(c, -1e18) <= timeout_s)
