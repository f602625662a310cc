"""The client registry: the allow-list (id, Ed25519 public key, federation index), admission, liveness, and
the last accepted nonce of every client, persisted so a replay is refused even across a restart. The allow-list
file is re-read when it changes: a client removed from it is refused from its next call, a new key takes effect,
and a file that is malformed or moves a client's index is reported and ignored."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import sys
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


def file_state(path: str | pathlib.Path) -> tuple[int, ...] | None:
    """What tells that a file changed (an edit in place or a replacement), without reading it; None: missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def moved_indices(old: dict[str, int], new: dict[str, ClientEntry]) -> str:
    """Why a new allow-list cannot replace the run's ('' if it can): an index names a client's seeds and data,
    so no client may change index and no index may pass to another client during a run."""
    holder = {i: cid for cid, i in old.items()}
    for e in new.values():
        if e.id in old and old[e.id] != e.index:
            return f"client {e.id} has index {e.index}, but it is index {old[e.id]} in this run"
        if holder.get(e.index, e.id) != e.id:
            return f"client {e.id} has index {e.index}, which is {holder[e.index]}'s in this run"
    return ""


class Registry:
    def __init__(self, db: sqlite3.Connection, entries: dict[str, ClientEntry], run_id: str,
                 coordinator: str, path: str | pathlib.Path = "", num_clients: int = 0) -> None:
        self.db = db
        self.db.executescript(SCHEMA)
        self.path, self.num_clients, self.seen = path, num_clients, file_state(path) if path else None
        self.verifier = Verifier({}, run_id=run_id, coordinator=coordinator)
        self.admitted: set[str] = set()
        rows = db.execute("SELECT id, idx, last_nonce FROM clients").fetchall()
        # every id and index this run has known, listed or not: nonces are kept so a re-listed client's old
        # requests stay replays, and indices so they never move
        self.index_of = {cid: idx for cid, idx, _ in rows} | {cid: e.index for cid, e in entries.items()}
        self.verifier.last_nonce.update({cid: nonce for cid, _, nonce in rows})
        self._use(entries)
        self.dirty: dict[str, int] = {}  # accepted nonces not yet written
        self.last_seen: dict[str, float] = {}
        self.in_call: dict[str, int] = {}  # open long-polls count as presence

    def _use(self, entries: dict[str, ClientEntry]) -> None:
        self.entries = entries
        self.by_index = {e.index: e for e in entries.values()}
        self.verifier.set_keys({cid: e.public_key for cid, e in entries.items()})
        self.admitted = {cid for (cid,) in self.db.execute("SELECT id FROM clients WHERE admitted = 1")
                         if cid in entries}

    def reload_if_changed(self) -> None:
        """Re-read the allow-list file if it changed since it was last read (a stat, called every tick)."""
        state = file_state(self.path) if self.path else None
        if state == self.seen:
            return
        self.seen = state
        try:
            entries = load_allow_list(self.path, self.num_clients)
            why = moved_indices(self.index_of, entries)
            if why:
                raise ValueError(f"allow-list {self.path}: {why}")
        except ValueError as e:
            print(f"fedseed server: the allow-list was not reloaded, the clients admitted before keep it: {e}",
                  file=sys.stderr, flush=True)
            return
        old = self.entries
        self.index_of |= {cid: e.index for cid, e in entries.items()}
        self._use(entries)
        changes = [f"{what} {', '.join(sorted(ids))}" for what, ids in (
            ("removed", old.keys() - entries.keys()), ("added", entries.keys() - old.keys()),
            ("new key for", {c for c in entries.keys() & old.keys() if entries[c].public_key != old[c].public_key}))
            if ids]
        print(f"fedseed server: allow-list {self.path} reloaded: {'; '.join(changes) or 'no change'}",
              file=sys.stderr, flush=True)

    def verify(self, request: Message, body: bytes, signature: bytes, method: str) -> ClientEntry:
        """The verified client (request parsed from body, the bytes as received; signature from the call's
        metadata); raises fedseed.auth.AuthError (nothing recorded) for a request to refuse."""
        hello = method == "Join" and not request.layout.fingerprint  # type: ignore[attr-defined]
        cid = self.verifier.verify(request, body, signature, method, int(time.time() * 1000), hello)
        self.dirty[cid] = self.verifier.last_nonce[cid]
        self.last_seen[cid] = time.monotonic()
        return self.entries[cid]

    def stage_nonces(self) -> None:
        """Write accepted nonces into the open transaction: a state change commits them with itself, so a request
        that changed state can never be replayed after a crash; read-only calls are flushed within a tick."""
        if self.dirty:
            self.db.executemany("INSERT INTO clients VALUES (?, ?, ?, 0) ON CONFLICT(id) DO UPDATE SET last_nonce = ?",
                                [(c, self.index_of[c], n, n) for c, n in self.dirty.items()])
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
