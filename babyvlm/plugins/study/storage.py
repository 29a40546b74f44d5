"""The study's SQLite file: one database, WAL journal, every answer stored in one transaction.

Tables: ``meta`` (the study's settings and item-set fingerprint, the cookie secret), ``participants``
(anonymous id, recruiting ids, seed, trial order, progress) and ``trials`` (one row per answered screen:
participant, task, item, screen, trial index, stimulus JSON, response, correct, rt in ms from stimulus
onset, shown/answered timestamps, ms since the study started). ``UNIQUE(participant_id, trial_index)``
makes a replayed answer impossible even under concurrent requests.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from babyvlm.core.errors import ConfigError, DataError

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY,
    prolific_pid TEXT, study_id TEXT, session_id TEXT, url_params TEXT NOT NULL,
    seed INTEGER NOT NULL, trial_order TEXT NOT NULL,
    next_trial INTEGER NOT NULL DEFAULT 0, shown_at REAL,
    created_at REAL NOT NULL, finished_at REAL, user_agent TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS participants_prolific ON participants(prolific_pid) WHERE prolific_pid IS NOT NULL;
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    participant_id TEXT NOT NULL REFERENCES participants(participant_id),
    trial_index INTEGER NOT NULL, task TEXT NOT NULL, item_id TEXT NOT NULL, screen INTEGER NOT NULL,
    stimulus TEXT NOT NULL, response TEXT NOT NULL, gold TEXT NOT NULL, correct INTEGER NOT NULL,
    rt_ms REAL NOT NULL, shown_at REAL NOT NULL, answered_at REAL NOT NULL, time_elapsed_ms REAL NOT NULL,
    UNIQUE (participant_id, trial_index)
);
"""


class StudyDB:
    """Opens a connection per use (Flask serves requests on several threads)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise ConfigError(f"{self.path}: exists and is not a file; --db must name a SQLite file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_hex(32),))

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise DataError(f"{self.path}: cannot open the study database ({exc})") from exc
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an acknowledged answer survives a power loss
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: {exc}") from exc
        finally:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: all of the block's writes or none."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # ---- meta ----------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.connect() as db:
            return {row["key"]: row["value"] for row in db.execute("SELECT key, value FROM meta")}

    def bind_study(self, settings: Mapping[str, Any]) -> None:
        """Record the study's settings; a database made for another item set or order is refused."""
        wanted = json.dumps(dict(settings), sort_keys=True)
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'study'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('study', ?)", (wanted,))
                return
        if json.loads(row["value"]).get("fingerprint") != settings.get("fingerprint"):
            raise ConfigError(f"{self.path}: this database belongs to a study with other items or settings "
                              f"({json.loads(row['value']).get('tasks')}); use a new --db for a new study")

    def study(self) -> dict[str, Any]:
        value = self.meta().get("study")
        if value is None:
            raise DataError(f"{self.path}: no study has been served from this database yet")
        return json.loads(value)

    # ---- participants --------------------------------------------------------------------------------
    def participant(self, participant_id: str) -> dict[str, Any] | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM participants WHERE participant_id = ?", (participant_id,)).fetchone()
        return None if row is None else _participant(row)

    def participant_by_prolific(self, prolific_pid: str) -> dict[str, Any] | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM participants WHERE prolific_pid = ?", (prolific_pid,)).fetchone()
        return None if row is None else _participant(row)

    def add_participant(self, participant_id: str, seed: int, order: list[list[Any]], params: Mapping[str, str],
                        user_agent: str) -> dict[str, Any]:
        """Add a participant; ``DuplicateParticipant`` (naming the one there) when another request added
        one with the same ``PROLIFIC_PID`` first."""
        try:
            self._insert_participant(participant_id, seed, order, params, user_agent)
        except DataError as exc:
            existing = self.participant_by_prolific(params["PROLIFIC_PID"]) if params.get("PROLIFIC_PID") else None
            if existing is None or not isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise
            raise DuplicateParticipant(existing) from None
        return self.participant(participant_id)  # type: ignore[return-value]

    def _insert_participant(self, participant_id: str, seed: int, order: list[list[Any]], params: Mapping[str, str],
                            user_agent: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO participants (participant_id, prolific_pid, study_id, session_id, url_params, "
                       "seed, trial_order, created_at, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (participant_id, params.get("PROLIFIC_PID"), params.get("STUDY_ID"), params.get("SESSION_ID"),
                        json.dumps(dict(params)), seed, json.dumps(order), time.time(), user_agent[:300]))

    def mark_shown(self, participant_id: str, trial_index: int) -> float:
        """When the screen at ``trial_index`` was first served (kept across reloads)."""
        with self.transaction() as db:
            db.execute("UPDATE participants SET shown_at = ? WHERE participant_id = ? AND next_trial = ? "
                       "AND shown_at IS NULL", (time.time(), participant_id, trial_index))
            row = db.execute("SELECT shown_at FROM participants WHERE participant_id = ?", (participant_id,)).fetchone()
        return float(row["shown_at"])

    def record_trial(self, participant: Mapping[str, Any], row: Mapping[str, Any], total: int) -> int:
        """Store one answer and advance the participant, in one transaction; returns the next index.
        Raises ``ReplayError`` when that trial index is not the participant's next one (any more)."""
        with self.transaction() as db:
            current = db.execute("SELECT next_trial, shown_at FROM participants WHERE participant_id = ?",
                                 (participant["participant_id"],)).fetchone()
            if current["next_trial"] != row["trial_index"]:
                raise ReplayError(current["next_trial"])
            db.execute("INSERT INTO trials (participant_id, trial_index, task, item_id, screen, stimulus, response, "
                       "gold, correct, rt_ms, shown_at, answered_at, time_elapsed_ms) "
                       "VALUES (:participant_id, :trial_index, :task, :item_id, :screen, :stimulus, :response, "
                       ":gold, :correct, :rt_ms, :shown_at, :answered_at, :time_elapsed_ms)", dict(row))
            following = row["trial_index"] + 1
            db.execute("UPDATE participants SET next_trial = ?, shown_at = NULL, finished_at = ? "
                       "WHERE participant_id = ?",
                       (following, time.time() if following >= total else None, participant["participant_id"]))
        return following

    # ---- export --------------------------------------------------------------------------------------
    def participants(self) -> list[dict[str, Any]]:
        with self.connect() as db:
            return [_participant(row) for row in db.execute("SELECT * FROM participants ORDER BY created_at")]

    def trials(self) -> list[dict[str, Any]]:
        with self.connect() as db:
            rows = db.execute("SELECT * FROM trials ORDER BY participant_id, trial_index").fetchall()
        return [dict(row, stimulus=json.loads(row["stimulus"]), correct=bool(row["correct"])) for row in rows]


class DuplicateParticipant(Exception):
    """A participant with this ``PROLIFIC_PID`` was added meanwhile (two starts at once)."""

    def __init__(self, existing: dict[str, Any]):
        super().__init__(existing["participant_id"])
        self.existing = existing


class ReplayError(Exception):
    """An answer for a trial that is not the participant's next one."""

    def __init__(self, expected: int):
        super().__init__(expected)
        self.expected = expected


def _participant(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["trial_order"] = json.loads(data["trial_order"])
    data["url_params"] = json.loads(data["url_params"])
    return data
