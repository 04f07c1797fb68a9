"""The run store: one SQLite database (WAL mode) under a runs root, read as DataFrames.

Layout under the root (default ``./runs``; ``--runs-dir`` or ``LEARNSCOPE_RUNS`` override)::

    learnscope.db            runs, metrics, events, labels (tags, notes), sweeps
    <run id>/config.yaml     the validated config, written when the run starts
    <run id>/checkpoints/    step_00000300.pt ... (see learnscope.checkpoint)

Writes are transactional and metrics are buffered: :meth:`Store.log` appends to memory and
:meth:`Store.flush` writes the buffer in one transaction (the store logger flushes every time
values are published, so before any checkpoint is written, and at the end), so a kill loses
at most the unflushed rows and never corrupts the file.
Several processes may write at once: WAL lets readers run beside one writer, and the busy
timeout makes a second writer wait for the first instead of failing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from learnscope.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

DB_NAME = "learnscope.db"
#: what a tag may be (``learnscope tag RUN TAG...``); a note is free text up to MAX_NOTE
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_NOTE = 2000
_LABELS = "SELECT text FROM labels WHERE run_id = ? AND kind = ? ORDER BY created, rowid"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL,
    created REAL NOT NULL, finished REAL, sweep_id TEXT, summary TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, value REAL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics (run_id, name, step);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, step INTEGER, kind TEXT NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    run_id TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_run ON labels (run_id);
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, spec TEXT NOT NULL,
    members INTEGER NOT NULL, created REAL NOT NULL, finished REAL
);
"""


def default_root() -> Path:
    return Path(os.environ.get("LEARNSCOPE_RUNS", "runs"))


def _yaml(config: dict[str, Any]) -> str:
    """A config as YAML, in its own key order (libyaml's dumper where installed: ~10x faster,
    which a sweep writing hundreds of members notices)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(config, Dumper=dumper, sort_keys=False)


def new_run_id() -> str:
    """Sortable by creation time, unique without coordination: ``20261123-162233-a1b2c3``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class Run:
    id: str
    dir: Path


class RunLock:
    """The exclusive right to train one run: an ``flock`` on ``<run dir>/.lock``, holding the
    owner's pid. The operating system releases it when the owner dies, however it dies, so a
    killed run is never mistaken for a live one (``Store.is_live``), and a second process
    cannot train the same run at the same time."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; False if another process does."""
        if fcntl is None:  # no flock on this platform: no protection, never refuse
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._take(fd)

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock now (creates no file)."""
        if fcntl is None or not self.path.exists():
            return False
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return False
        if not self._take(fd, write=False):
            return True
        self.release()
        return False

    def _take(self, fd: int, write: bool = True) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        if write:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> str:
        """The pid written by the process holding the lock (for messages)."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"


def _set_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried for up to ``timeout_s``: while another process is
    creating the same new database file, SQLite answers "database is locked" at once instead
    of waiting on the busy timeout (two ``learnscope run`` started together on a new store)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Store:
    """A handle on the runs root; opens the database lazily (nothing is created by reads)."""

    def __init__(self, root: str | Path | None = None, busy_timeout_s: float = 60.0) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._buffer: list[tuple[str, int, str, float]] = []

    # -- connection -----------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.root / DB_NAME

    def _db(self, create: bool = True) -> sqlite3.Connection:
        if self._conn is None:
            if not create and not self.path.exists():
                raise UserError(f"runs-dir: no run store at {self.path}")
            self.root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            _set_wal(conn, self.busy_timeout_s)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            with _transaction(conn):
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- writing --------------------------------------------------------------------------
    def create_run(self, name: str, config: dict[str, Any], sweep_id: str | None = None) -> Run:
        """Insert a ``running`` row and write ``<id>/config.yaml``; if either fails (a full
        disk), neither is left behind."""
        run_id = new_run_id()
        run = Run(run_id, self.root / run_id)
        try:
            run.dir.mkdir(parents=True)
            (run.dir / "config.yaml").write_text(_yaml(config))
            with _transaction(self._db()) as db:
                db.execute(
                    "INSERT INTO runs (id, name, status, config, created, sweep_id) "
                    "VALUES (?, ?, 'running', ?, ?, ?)",
                    (run.id, name, json.dumps(config), time.time(), sweep_id),
                )
        except BaseException:
            shutil.rmtree(run.dir, ignore_errors=True)
            raise
        return run

    def set_config(self, run_id: str, config: dict[str, Any]) -> None:
        """Replace a run's config (a resumed run given more steps), row and file alike."""
        (self.root / run_id / "config.yaml").write_text(_yaml(config))
        with _transaction(self._db()) as db:
            db.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config), run_id))

    def lock(self, run_id: str) -> RunLock:
        """The run's lock, taken; a :class:`UserError` if another process trains the run."""
        lock = RunLock(self.root / run_id)
        if not lock.acquire():
            raise UserError(
                f"run {run_id}: another process (pid {lock.holder()}) is training it; "
                "wait for it to end or stop it first"
            )
        return lock

    def is_live(self, run_id: str) -> bool:
        """Whether a process is training the run now (holds its lock). A run whose status
        says ``running`` but that nobody trains was killed: ``learnscope ls`` shows it
        ``stale``."""
        return RunLock(self.root / run_id).held_elsewhere()

    def log(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        """Buffer one row per metric; written by the next :meth:`flush`."""
        self._buffer.extend((run_id, step, k, float(v)) for k, v in metrics.items())

    def flush(self) -> None:
        if not self._buffer:
            return
        rows, self._buffer = self._buffer, []
        with _transaction(self._db()) as db:
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", rows)

    def add_event(self, run_id: str, step: int | None, kind: str, data: dict[str, Any]) -> None:
        with _transaction(self._db()) as db:
            db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?)", (run_id, step, kind, json.dumps(data))
            )

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        self.flush()
        with _transaction(self._db()) as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, summary = ? WHERE id = ?",
                (status, time.time(), json.dumps(summary), run_id),
            )

    def set_status(self, run_id: str, status: str) -> None:
        with _transaction(self._db()) as db:
            db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))

    def truncate_metrics(self, run_id: str, from_step: int) -> None:
        """Drop the metrics at and after ``from_step`` and all events, which are derived from
        metrics and found again. Resuming from the checkpoint at step s measures step s again
        (its evaluation and the probes due there), so it truncates from s: no row twice."""
        self.flush()
        with _transaction(self._db()) as db:
            db.execute("DELETE FROM metrics WHERE run_id = ? AND step >= ?", (run_id, from_step))
            db.execute("DELETE FROM events WHERE run_id = ?", (run_id,))

    # -- tags and notes on runs ---------------------------------------------------------
    def tag(self, run_id: str, tags: list[str], remove: bool = False) -> list[str]:
        """Add ``tags`` to a run (those it has already are kept once), or ``remove`` them;
        returns the run's tags after."""
        for t in tags:
            if not TAG.fullmatch(t):
                raise UserError(
                    f"tag: {t!r} is not a tag: letters, digits and _ . : - (at most 64, "
                    "starting with a letter or digit)"
                )
        self.run(run_id)  # a run that exists
        with _transaction(self._db()) as db:
            have = {r[0] for r in db.execute(_LABELS, (run_id, "tag"))}
            if remove:
                db.executemany(
                    "DELETE FROM labels WHERE run_id = ? AND kind = 'tag' AND text = ?",
                    [(run_id, t) for t in tags],
                )
            else:
                new = [t for t in dict.fromkeys(tags) if t not in have]
                db.executemany(
                    "INSERT INTO labels VALUES (?, 'tag', ?, ?)",
                    [(run_id, t, time.time()) for t in new],
                )
        return self.labels(run_id)["tag"]

    def note(self, run_id: str, text: str) -> None:
        """Add a note (free text) to a run; a run keeps every note, oldest first."""
        if not text.strip() or len(text) > MAX_NOTE:
            raise UserError(f"note: give 1 to {MAX_NOTE} characters (got {len(text)})")
        self.run(run_id)
        with _transaction(self._db()) as db:
            db.execute("INSERT INTO labels VALUES (?, 'note', ?, ?)", (run_id, text, time.time()))

    def labels(self, run_id: str) -> dict[str, list[str]]:
        """A run's ``tag`` and ``note`` lists, in the order they were added."""
        if not self.path.exists():
            return {"tag": [], "note": []}
        db = self._db(create=False)
        return {
            kind: [r[0] for r in db.execute(_LABELS, (run_id, kind))] for kind in ("tag", "note")
        }

    # -- sweeps (members are runs whose sweep_id is the sweep's id) ----------------------
    def create_sweep(self, name: str, spec: dict[str, Any], members: int) -> str:
        sweep_id = "sw-" + new_run_id()
        with _transaction(self._db()) as db:
            db.execute(
                "INSERT INTO sweeps (id, name, status, spec, members, created) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (sweep_id, name, json.dumps(spec), members, time.time()),
            )
        return sweep_id

    def delete_sweep(self, sweep_id: str) -> None:
        """Remove a sweep's row (one that has no member runs)."""
        with _transaction(self._db()) as db:
            db.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,))

    def set_sweep_status(self, sweep_id: str, status: str) -> None:
        with _transaction(self._db()) as db:
            db.execute(
                "UPDATE sweeps SET status = ?, finished = ? WHERE id = ?",
                (status, time.time() if status != "running" else None, sweep_id),
            )

    def sweeps(self) -> pd.DataFrame:
        """One row per sweep, newest last; ``spec`` parsed from JSON."""
        cols = ["id", "name", "status", "members", "created", "finished", "spec"]
        if not self.path.exists():
            return pd.DataFrame(columns=cols)
        df = pd.read_sql_query(
            f"SELECT {', '.join(cols)} FROM sweeps ORDER BY created, id", self._db(create=False)
        )
        df["spec"] = df["spec"].map(json.loads)
        return df

    # -- reading --------------------------------------------------------------------------
    def runs(self) -> pd.DataFrame:
        """One row per run, newest last; ``summary`` and ``config`` parsed from JSON, and the
        run's ``tags`` (a list)."""
        cols = ["id", "name", "status", "created", "finished", "sweep_id", "config", "summary"]
        if not self.path.exists():
            return pd.DataFrame(columns=[*cols, "tags"])
        df = pd.read_sql_query(
            f"SELECT {', '.join(cols)} FROM runs ORDER BY created, id", self._db(create=False)
        )
        df["config"] = df["config"].map(json.loads)
        df["summary"] = df["summary"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
        tags: dict[str, list[str]] = {}
        for run_id, text in self._db(create=False).execute(
            "SELECT run_id, text FROM labels WHERE kind = 'tag' ORDER BY created, rowid"
        ):
            tags.setdefault(run_id, []).append(text)
        df["tags"] = df["id"].map(lambda i: tags.get(i, []))
        return df

    def resolve(self, ref: str) -> str:
        """A run id from an id, a unique id prefix, or ``last`` (the newest run)."""
        runs = self.runs()
        if ref == "last" and len(runs):
            return str(runs["id"].iloc[-1])
        hits = [r for r in runs["id"] if r.startswith(ref)] if ref else []
        if len(hits) == 1:
            return hits[0]
        known = ", ".join(runs["id"].tail(5)) or "none"
        what = "is ambiguous" if hits else "matches no run"
        raise UserError(f"run: {ref!r} {what}; recent runs: {known} (or 'last')")

    def run(self, run_id: str) -> dict[str, Any]:
        rows = self.runs()
        rows = rows[rows["id"] == run_id]
        if rows.empty:
            raise UserError(f"run: no run {run_id!r}")
        rec = rows.iloc[0].to_dict()
        rec["dir"] = self.root / run_id
        return rec

    def metrics(self, run_id: str, names: list[str] | None = None) -> pd.DataFrame:
        """Long table (step, name, value), ordered by name then step."""
        self.flush()
        query = "SELECT step, name, value FROM metrics WHERE run_id = ?"
        params: list[Any] = [run_id]
        if names:
            query += f" AND name IN ({', '.join('?' * len(names))})"
            params += names
        return pd.read_sql_query(
            query + " ORDER BY name, step", self._db(create=False), params=params
        )

    def metric_table(self, run_id: str) -> pd.DataFrame:
        """Wide table: one row per step, one column per metric."""
        long = self.metrics(run_id)
        if long.empty:
            return pd.DataFrame()
        if long.duplicated(["step", "name"]).any():  # a store written before resumes were exact
            return long.pivot_table(index="step", columns="name", values="value", aggfunc="last")
        return long.pivot(index="step", columns="name", values="value")

    def events(self, run_id: str) -> pd.DataFrame:
        df = pd.read_sql_query(
            "SELECT step, kind, data FROM events WHERE run_id = ? ORDER BY step",
            self._db(create=False),
            params=[run_id],
        )
        df["data"] = df["data"].map(json.loads)
        return df


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
