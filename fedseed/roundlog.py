"""The round log in SQLite: base fingerprint, run settings, and every round's global update, client
scalars, metrics and checksum. Base weights + the ordered log reproduce any round's weights exactly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import sqlite3
import time
from collections.abc import Iterator

import numpy as np

from fedseed.directions import coef_to_int
from fedseed.private import ensure_private
from fedseed.strategies.base import ClientResult, GlobalUpdate

LOG_VERSION = 1  # PRAGMA user_version of a log this fedseed writes; 0 is the unversioned layout before it
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, kind TEXT NOT NULL, seeds BLOB NOT NULL, coefs BLOB NOT NULL,
    starts BLOB, stops BLOB, pool_indices BLOB, dense BLOB,
    checksum TEXT NOT NULL, metrics TEXT NOT NULL, created REAL NOT NULL, strategy_state BLOB);
CREATE TABLE IF NOT EXISTS client_updates (
    round INTEGER NOT NULL, client INTEGER NOT NULL, num_samples INTEGER NOT NULL, payload BLOB NOT NULL,
    train_loss REAL, skipped INTEGER NOT NULL, PRIMARY KEY (round, client));
CREATE TABLE IF NOT EXISTS pending (
    round INTEGER NOT NULL, client INTEGER NOT NULL, num_samples INTEGER NOT NULL, payload BLOB NOT NULL,
    train_loss REAL, skipped INTEGER NOT NULL, PRIMARY KEY (round, client));
CREATE TABLE IF NOT EXISTS dropped (
    round INTEGER NOT NULL, client INTEGER NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (round, client));
"""
# version 0 -> 1: strategy state saved with every round, results dropped at close kept with their reason
MIGRATIONS = {0: ["ALTER TABLE rounds ADD COLUMN strategy_state BLOB",
                  "CREATE TABLE IF NOT EXISTS dropped (round INTEGER NOT NULL, client INTEGER NOT NULL, "
                  "reason TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (round, client))"]}
RESULT_COLUMNS = "round, client, num_samples, payload, train_loss, skipped"


def pack_state(state: dict[str, np.ndarray]) -> bytes | None:
    """Strategy state as an .npz archive (arrays only, never pickled objects)."""
    if not state:
        return None
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in state.items()})
    return buf.getvalue()


def unpack_state(blob: bytes | None) -> dict[str, np.ndarray]:
    if not blob:
        return {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _blob(a: np.ndarray | None, dtype: str) -> bytes | None:
    return None if a is None else np.ascontiguousarray(a, dtype=dtype).tobytes()


def _array(b: bytes | None, dtype: str) -> np.ndarray | None:
    return None if b is None else np.frombuffer(b, dtype=dtype).copy()


class RoundLog:
    """A run's round log. Opened to write (a driver's), it is created or migrated to LOG_VERSION; opened
    read-only (``open_existing``: inspect, info, export, replay) nothing in the file is changed."""

    def __init__(self, path: str | pathlib.Path, read_only: bool = False, any_thread: bool = False) -> None:
        """any_thread: the connection may be closed from another thread than the one that uses it."""
        self.path = pathlib.Path(path)
        self.read_only = read_only
        try:
            if read_only:
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=not any_thread)
            else:
                self._create_private()
                self.db = sqlite3.connect(self.path)
        except sqlite3.Error as e:
            raise ValueError(f"{self.path} cannot be opened as a round log: {e}") from None
        try:
            self._open()
            if not read_only:
                self._tighten()
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise ValueError(f"{self.path} is not a readable round log (SQLite says: {e})") from None
        except BaseException:
            self.db.close()
            raise

    def _create_private(self) -> None:
        """The log holds every client's payload: a new one is created 0600 before SQLite opens it (SQLite gives
        its -wal and -shm files the database file's mode)."""
        if self.path.parent.is_dir() and not self.path.exists():  # else sqlite3 reports the missing folder
            ensure_private(self.path)

    def _tighten(self) -> None:
        """Take group and other access off a log an older fedseed wrote -- once it is known to be a round log. By
        path, never by opening the files: closing any descriptor of a file drops every POSIX lock this process holds
        on it, and SQLite's locks on the -shm file are what stop another process from resetting it under us."""
        for suffix in ("", "-wal", "-shm"):
            path = self.path.with_name(self.path.name + suffix)
            try:
                if os.stat(path).st_mode & 0o077:
                    os.chmod(path, 0o600)
            except FileNotFoundError:
                pass

    def _open(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > LOG_VERSION:
            raise ValueError(f"round log {self.path} has format version {version}, newer than this fedseed's "
                             f"{LOG_VERSION}: upgrade fedseed to read it")
        if self.read_only:
            if not {"meta", "rounds", "client_updates"} <= tables:
                raise ValueError(f"{self.path} is not a fedseed round log (it has no meta, rounds and client "
                                 "updates tables)")
            self.columns = {r[1] for r in self.db.execute("PRAGMA table_info(rounds)")}
            self.tables = tables
            return
        if tables - {"clients"} and "rounds" not in tables:
            raise ValueError(f"{self.path} is a SQLite file of something else, not a fedseed round log")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process crash
        with self.db:  # create a new log, or bring an older one to LOG_VERSION
            if "rounds" in tables:
                for v in range(version, LOG_VERSION):
                    for statement in MIGRATIONS[v]:
                        self.db.execute(statement)
            self.db.executescript(SCHEMA)
            self.db.execute(f"PRAGMA user_version = {LOG_VERSION}")
        self.columns = {r[1] for r in self.db.execute("PRAGMA table_info(rounds)")}
        self.tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    @staticmethod
    def open_existing(path: str | pathlib.Path) -> RoundLog:
        """An existing run's log (its folder or the file), read-only."""
        p = pathlib.Path(path)
        if p.is_dir():
            p = p / "log.sqlite"
        if not p.is_file():
            raise FileNotFoundError(f"no round log at {p}")
        return RoundLog(p, read_only=True)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RoundLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[RoundLog]:
        """Reads inside see one state of the file (a round committing meanwhile is seen whole or not at all)."""
        self.db.execute("BEGIN")
        try:
            yield self
        finally:
            self.db.execute("ROLLBACK")

    def set_meta(self, **items: object) -> None:
        with self.db:
            for k, v in items.items():
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))

    def meta(self, key: str) -> object:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(f"round log {self.path} has no '{key}'")
        return json.loads(row[0])

    def last_round(self) -> int:
        row = self.db.execute("SELECT MAX(round) FROM rounds").fetchone()
        return int(row[0] or 0)

    def append(self, update: GlobalUpdate, results: list[ClientResult], checksum: str, metrics: dict,
               strategy_state: dict[str, np.ndarray] | None = None) -> None:
        """Write one round atomically (with the strategy's state after it); rounds must arrive in order."""
        if update.round != self.last_round() + 1:
            raise ValueError(f"round {update.round} does not follow logged round {self.last_round()}")
        with self.db:
            self.db.execute(
                "INSERT INTO rounds (round, kind, seeds, coefs, starts, stops, pool_indices, dense, checksum, "
                "metrics, created, strategy_state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (update.round, update.kind, _blob(update.seeds, "<i8"), _blob(update.coefs, "<f4"),
                 _blob(update.starts, "<i8"), _blob(update.stops, "<i8"), _blob(update.pool_indices, "<i8"),
                 _blob(update.dense, "<f4"), checksum, json.dumps(metrics), time.time(),
                 pack_state(strategy_state or {})))
            self.db.executemany(
                f"INSERT INTO client_updates ({RESULT_COLUMNS}) VALUES (?,?,?,?,?,?)",
                [(r.round, r.client, r.num_samples, r.payload, r.train_loss, r.skipped_steps) for r in results])
            self.db.execute("DELETE FROM pending WHERE round <= ?", (update.round,))

    def set_checksum(self, round_idx: int, checksum: str) -> None:
        """Record a round's checksum learnt after the fact (a coordinator that holds no model)."""
        with self.db:
            self.db.execute("UPDATE rounds SET checksum = ? WHERE round = ? AND checksum = ''", (checksum, round_idx))

    def add_pending(self, result: ClientResult) -> None:
        """Keep an accepted client result of the open round, so a restarted coordinator loses nothing."""
        with self.db:
            self.db.execute(f"INSERT INTO pending ({RESULT_COLUMNS}) VALUES (?,?,?,?,?,?)", (
                result.round, result.client, result.num_samples, result.payload, result.train_loss,
                result.skipped_steps))

    def drop_pending(self, round_idx: int, client: int, reason: str) -> None:
        """An accepted result that could not join its round after all: gone from pending, kept with the reason."""
        with self.db:
            self.db.execute("DELETE FROM pending WHERE round = ? AND client = ?", (round_idx, client))
            self.db.execute("INSERT OR REPLACE INTO dropped (round, client, reason, created) VALUES (?,?,?,?)",
                            (round_idx, client, reason, time.time()))

    def dropped(self, round_idx: int) -> dict[int, str]:
        if "dropped" not in self.tables:  # an unversioned log opened read-only
            return {}
        rows = self.db.execute("SELECT client, reason FROM dropped WHERE round = ?", (round_idx,)).fetchall()
        return {int(c): str(reason) for c, reason in rows}

    def pending(self, round_idx: int) -> list[ClientResult]:
        rows = self.db.execute("SELECT round, client, payload, num_samples, train_loss, skipped FROM pending "
                               "WHERE round = ? ORDER BY client", (round_idx,)).fetchall()
        return [ClientResult(r[0], r[1], r[2], r[3], r[4] if r[4] is not None else float("nan"), r[5])
                for r in rows]

    def update(self, round_idx: int) -> GlobalUpdate:
        row = self.db.execute("SELECT round, kind, seeds, coefs, starts, stops, pool_indices, dense FROM rounds "
                              "WHERE round = ?", (round_idx,)).fetchone()
        if row is None:
            raise KeyError(f"round {round_idx} is not in the log (last: {self.last_round()})")
        return GlobalUpdate(row[0], row[1], _array(row[2], "<i8"), _array(row[3], "<f4"), _array(row[4], "<i8"),
                            _array(row[5], "<i8"), _array(row[6], "<i8"), _array(row[7], "<f4"))

    def updates(self, first: int, last: int) -> Iterator[GlobalUpdate]:
        for r in range(first, last + 1):
            yield self.update(r)

    def checksum(self, round_idx: int) -> str:
        row = self.db.execute("SELECT checksum FROM rounds WHERE round = ?", (round_idx,)).fetchone()
        if row is None:
            raise KeyError(f"round {round_idx} is not in the log (last: {self.last_round()})")
        return row[0]

    def strategy_state(self, round_idx: int) -> dict[str, np.ndarray] | None:
        """The strategy's state after round_idx (None: a log from before states were saved)."""
        if "strategy_state" not in self.columns:
            return None
        row = self.db.execute("SELECT strategy_state, round FROM rounds WHERE round = ?", (round_idx,)).fetchone()
        if row is None:
            raise KeyError(f"round {round_idx} is not in the log (last: {self.last_round()})")
        return unpack_state(row[0]) if row[0] is not None else None

    def metrics(self) -> list[dict]:
        return [json.loads(m) for (m,) in self.db.execute("SELECT metrics FROM rounds ORDER BY round")]

    def client_results(self, round_idx: int) -> list[ClientResult]:
        rows = self.db.execute("SELECT round, client, payload, num_samples, train_loss, skipped FROM client_updates "
                               "WHERE round = ? ORDER BY client", (round_idx,)).fetchall()
        return [ClientResult(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def merged_seed_coefs(updates: list[GlobalUpdate]) -> tuple[str, list[tuple[int, int, int, int]]]:
    """Sum the integer coefficients of every (seed, start, stop) over many rounds.

    Because the state is exact fixed point, applying the merged list equals applying the rounds one by one,
    bit for bit; for FedKSeed the list has at most K entries however many rounds are merged (O(K d) catch-up).
    """
    kinds = {u.kind for u in updates}
    if len(kinds) > 1:
        raise ValueError(f"cannot merge updates of different direction kinds {sorted(kinds)}")
    acc: dict[tuple[int, int, int], int] = {}
    for u in updates:
        if u.dense is not None:
            raise ValueError("dense (first-order) updates cannot be merged into seeds")
        for k, (seed, c) in enumerate(zip(u.seeds.tolist(), u.coefs.tolist())):
            lo = -1 if u.starts is None else int(u.starts[k])
            hi = -1 if u.stops is None else int(u.stops[k])
            key = (int(seed), lo, hi)
            acc[key] = acc.get(key, 0) + coef_to_int(float(c), u.kind)
    kind = kinds.pop() if kinds else "rademacher"
    return kind, [(s, lo, hi, c) for (s, lo, hi), c in sorted(acc.items()) if c != 0]
