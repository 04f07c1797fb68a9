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

import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from learnscope.errors import StorageError, UserError, cut, damaged_message
from learnscope.files import write_atomic

if TYPE_CHECKING:
    import pandas as pd

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

DB_NAME = "learnscope.db"
#: the extended attribute of the store that holds its size and time of change when
#: ``quick_check`` last passed on it
CHECKED_ATTR = "user.learnscope.checked"
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


def configs_yaml(configs: list[dict[str, Any]]) -> list[str]:
    """The config files of an ensemble's members (:func:`_yaml` of each config), dumped
    section by section: a block mapping's document is its top-level keys' documents one after
    the other, and the members' sections are mostly equal, so each distinct section (by its
    ``repr``: types and order included) is dumped once. The configs are ``RunConfig.to_dict``
    output (fresh JSON values: no object shared between sections, so no YAML alias lost)."""
    cache: dict[tuple[str, str], str] = {}
    out = []
    for config in configs:
        if not config:
            out.append(_yaml(config))
            continue
        parts = []
        for key, value in config.items():
            at = (key, repr(value))
            text = cache.get(at)
            if text is None:
                text = cache[at] = _yaml({key: value})
            parts.append(text)
        out.append("".join(parts))
    return out


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

    def __init__(self, run_dir: Path, name: str = ".lock") -> None:
        self.path = Path(run_dir) / name
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock if nobody holds it (nor the ensemble lock it names, see
        :meth:`Store.lock_group`); False if another process does."""
        if fcntl is None:  # no flock on this platform: no protection, never refuse
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not self._take(fd, write=False):
            return False
        group = self._group()
        if group is not None and group.held_elsewhere():  # a live ensemble trains the run
            self.release()
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return True

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock now, or the ensemble lock it names (creates
        no file)."""
        if fcntl is None or not self.path.exists():
            return False
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return False
        if not self._take(fd, write=False):
            return True
        group = self._group()
        self.release()
        return group is not None and group.held_elsewhere()

    def _group(self) -> RunLock | None:
        """The ensemble lock this run's lock file names (``group <run id>/.group.lock``)."""
        try:
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError):
            return None
        if not text.startswith("group "):
            return None
        where = Path(self.path.parent.parent / text[len("group ") :].strip())
        return RunLock(where.parent, where.name)

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
        group = self._group()
        if group is not None:
            return group.holder()
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"


class GroupLock:
    """The lock of an ensemble's new runs (:meth:`Store.lock_group`): one ``flock``, on
    ``<first run>/.group.lock``, which each run's ``.lock`` names; released, the file goes."""

    def __init__(self, lock: RunLock) -> None:
        self.lock = lock

    def release(self) -> None:
        if self.lock._fd is not None:
            self.lock.path.unlink(missing_ok=True)
            self.lock.release()


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
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--runs-dir: {cut(str(self.root))} is not a directory")
        if self.path.exists() and not self.path.is_file():
            raise UserError(f"--runs-dir: {cut(str(self.path))} is not a file")
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._buffer: list[tuple[str, int, str, float]] = []
        self.batching = 0  # depth of open batch() blocks: the store logger's flushes wait
        self._held_since: float | None = None  # when rows a batch(hold_s) left began to wait

    # -- connection -----------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.root / DB_NAME

    def require_writable(self) -> None:
        """A :class:`UserError` unless runs can be written under the root."""
        check_writable(self.root, "--runs-dir")

    def _db(self, create: bool = True) -> sqlite3.Connection:
        if self._conn is None:
            if not create and not self.path.exists():
                raise UserError(f"runs-dir: no run store at {self.path}")
            existed = self.path.exists()
            self.root.mkdir(parents=True, exist_ok=True)
            conn = None
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
                if existed:
                    self._check_if_changed(conn)
                _set_wal(conn, self.busy_timeout_s)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
                with _transaction(conn):
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
            except sqlite3.DatabaseError as err:
                if conn is not None:
                    conn.close()
                if not existed:  # a full disk: no empty store left behind
                    _remove_db(self.path)
                text = str(err)
                if "malformed" in text or "not a database" in text:
                    raise StorageError(damaged_message(self.path, text)) from None
                raise
            self._conn = conn
        return self._conn

    def _check_if_changed(self, conn: sqlite3.Connection) -> None:
        """SQLite's ``quick_check`` when the database file changed since the last check that
        passed (its size and time of change, kept in an extended attribute of the file: no
        other file is written; where the file system has none, every opening checks); a
        damaged file is a :class:`StorageError` naming it and the way to recover."""
        if _stamp(self.path) == _checked_stamp(self.path):
            return
        problem = integrity_problem(conn)
        if problem is not None:
            raise StorageError(damaged_message(self.path, problem))
        _mark_checked(self.path)

    def close(self) -> None:
        self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- writing --------------------------------------------------------------------------
    def create_run(
        self,
        name: str,
        config: dict[str, Any],
        sweep_id: str | None = None,
        text: str | None = None,
    ) -> Run:
        """Insert a ``running`` row and write ``<id>/config.yaml``; if either fails (a full
        disk), neither is left behind. ``text``: the config's YAML (``_yaml(config)``) where
        the caller has it already (an ensemble's members, whose configs share most sections)."""
        for attempt in range(8):  # a sweep creates many runs a second: an id taken, another
            run_id = new_run_id()
            run = Run(run_id, self.root / run_id)
            try:
                run.dir.mkdir(parents=True)
                break
            except FileExistsError:
                if attempt == 7:
                    raise
        try:
            (run.dir / "config.yaml").write_text(_yaml(config) if text is None else text)
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
        write_atomic(self.root / run_id / "config.yaml", _yaml(config))
        with _transaction(self._db()) as db:
            db.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config), run_id))

    def lock(self, run_id: str) -> RunLock:
        """The run's lock, taken; a :class:`UserError` if another process trains the run."""
        self.require_dir(run_id)
        lock = RunLock(self.root / run_id)
        if not lock.acquire():
            raise UserError(
                f"run {run_id}: another process (pid {lock.holder()}) is training it; "
                "wait for it to end or stop it first"
            )
        return lock

    def lock_group(self, run_ids: list[str]) -> GroupLock:
        """One lock for many runs this process has just created (an ensemble's members): one
        ``flock`` and one file descriptor in all, instead of one per run (a thousand members
        would need a thousand). Each run's ``.lock`` names the group's, so :meth:`is_live` and
        :meth:`lock` in another process see every run held until the group is released, or
        its process dies."""
        first = self.require_dir(run_ids[0])
        group = RunLock(first, ".group.lock")
        if not group.acquire():  # a new file: nobody else can hold it
            raise UserError(f"run {run_ids[0]}: its ensemble lock is held by another process")
        try:
            for run_id in run_ids:
                (self.require_dir(run_id) / ".lock").write_text(f"group {run_ids[0]}/.group.lock")
        except BaseException:
            GroupLock(group).release()
            raise
        return GroupLock(group)

    def require_dir(self, run_id: str) -> Path:
        """The run's directory; a :class:`UserError` when it is gone (deleted while its row
        remains)."""
        path = self.root / run_id
        if not path.is_dir():
            raise UserError(missing_dir(run_id, path))
        return path

    def is_live(self, run_id: str) -> bool:
        """Whether a process is training the run now (holds its lock). A run whose status
        says ``running`` but that nobody trains was killed: ``learnscope ls`` shows it
        ``stale``."""
        return RunLock(self.root / run_id).held_elsewhere()

    def log(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        """Buffer one row per metric; written by the next :meth:`flush`."""
        self._buffer.extend((run_id, step, k, float(v)) for k, v in metrics.items())

    def flush(self) -> None:
        self._held_since = None
        if not self._buffer:
            return
        rows, self._buffer = self._buffer, []
        with _transaction(self._db()) as db:
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", rows)

    @contextlib.contextmanager
    def batch(self, hold_s: float = 0.0) -> Iterator[Store]:
        """Every write inside the block in one transaction, the buffered rows included: the K
        members of an ensemble write a step's rows (or their runs, events and statuses) at the
        cost of one write. A kill inside the block loses the block's writes, never the file
        (SQLite rolls the open transaction back); blocks inside it join it. Inside it the
        store logger buffers its rows without flushing (:attr:`batching`): the block's rows go
        in with one ``executemany`` at its end, in the same transaction (rows buffered inside
        a block that fails are dropped, as its rolled-back writes are).

        ``hold_s``: the rows may instead stay buffered for a later block's commit, as long as
        the oldest of them has waited less than ``hold_s`` seconds (an ensemble's evaluation
        rounds: one commit per ``hold_s`` instead of one per evaluation); any other flush
        (a block without it, a read, a run's end) writes them, and a kill loses them as it
        loses any unflushed row."""
        with _transaction(self._db()):
            start = len(self._buffer)
            self.batching += 1
            try:
                yield self
            except BaseException:
                del self._buffer[start:]
                raise
            finally:
                self.batching -= 1
            now = time.monotonic()
            if self._buffer and hold_s and now - (self._held_since or now) < hold_s:
                self._held_since = self._held_since or now
            else:
                self.flush()

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
        import pandas as pd  # on first read: the commands that read nothing start sooner

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
        import pandas as pd

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
        import pandas as pd

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
        import pandas as pd

        long = self.metrics(run_id)
        if long.empty:
            return pd.DataFrame()
        if long.duplicated(["step", "name"]).any():  # a store written before resumes were exact
            return long.pivot_table(index="step", columns="name", values="value", aggfunc="last")
        return long.pivot(index="step", columns="name", values="value")

    def metric_tables(self, run_ids: list[str]) -> dict[str, pd.DataFrame]:
        """:meth:`metric_table` of many runs (an ensemble's members) from one query per 500
        runs: each run's wide table, its columns those it has values in."""
        import pandas as pd

        self.flush()
        parts = []
        for i in range(0, len(run_ids), 500):
            ids = list(run_ids[i : i + 500])
            parts.append(
                pd.read_sql_query(
                    "SELECT run_id, step, name, value FROM metrics WHERE run_id IN "
                    f"({', '.join('?' * len(ids))})",
                    self._db(create=False),
                    params=ids,
                )
            )
        long = pd.concat(parts) if parts else pd.DataFrame()
        out = {r: pd.DataFrame() for r in run_ids}
        if long.empty:
            return out
        if long.duplicated(["run_id", "step", "name"]).any():
            wide = long.pivot_table(
                index=["run_id", "step"], columns="name", values="value", aggfunc="last"
            )
        else:
            wide = long.pivot(index=["run_id", "step"], columns="name", values="value")
        for run_id, table in wide.groupby(level=0, sort=False):
            table = table.droplevel(0).dropna(axis=1, how="all")
            table.columns.name = "name"
            out[run_id] = table
        return out

    def events(self, run_id: str) -> pd.DataFrame:
        import pandas as pd

        df = pd.read_sql_query(
            "SELECT step, kind, data FROM events WHERE run_id = ? ORDER BY step",
            self._db(create=False),
            params=[run_id],
        )
        df["data"] = df["data"].map(json.loads)
        return df


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _checked_stamp(path: Path) -> str | None:
    """The stamp (:func:`_stamp`) of the store when ``quick_check`` last passed on it."""
    try:
        return os.getxattr(path, CHECKED_ATTR).decode()
    except (OSError, AttributeError, UnicodeDecodeError):  # no xattrs here: check every time
        return None


def _mark_checked(path: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.setxattr(path, CHECKED_ATTR, _stamp(path).encode())


def check_writable(path: Path, option: str) -> None:
    """A :class:`UserError` naming ``option`` unless ``path`` is a directory this process may
    write in, or one it can create (the nearest directory above it that exists is writable)."""
    at = Path(path).absolute()
    while not at.exists() and at != at.parent:
        at = at.parent
    if not at.is_dir() or not os.access(at, os.W_OK | os.X_OK):
        why = "is not a directory" if at.exists() and not at.is_dir() else "cannot be written"
        raise UserError(f"{option}: {cut(str(path))} {why} ({cut(str(at))})")
    target = Path(path).absolute()
    if target != at:  # made and removed again: some file systems refuse (/proc, /sys)
        try:
            target.mkdir(parents=True)
        except OSError as err:
            raise UserError(f"{option}: cannot create {cut(str(path))}: {err.strerror}") from None
        while target != at:
            target.rmdir()
            target = target.parent


def missing_dir(run_id: str, path: Path) -> str:
    """The line for a run whose directory is gone while its row remains."""
    return (
        f"run {run_id}: its directory {cut(str(path), 200)} is missing (deleted or moved?); "
        "its checkpoints went with it (`learnscope doctor` lists such runs)"
    )


def integrity_problem(conn: sqlite3.Connection, full: bool = False) -> str | None:
    """What SQLite's ``quick_check`` (``integrity_check`` with ``full``) finds wrong with the
    database, or None when it is sound."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}(5)")]
    except sqlite3.DatabaseError as err:
        return str(err)
    return None if rows == ["ok"] else "; ".join(rows)


def _remove_db(path: Path) -> None:
    """Remove a store file and its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink()


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection.
    Inside a transaction already open (:meth:`Store.batch`) it joins that one: the outer block
    commits, or rolls back on an error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.joined = False

    def __enter__(self) -> sqlite3.Connection:
        self.joined = self.conn.in_transaction
        if not self.joined:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.joined:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


# -- diagnosis and repair (``learnscope doctor``) ---------------------------------------------

#: the tables a rebuild copies from a damaged store, in this order
TABLES = ("runs", "sweeps", "metrics", "events", "labels")


@dataclass
class Diagnosis:
    """What ``learnscope doctor`` found under a runs root."""

    store: Path
    problem: str | None  # what integrity_check says is wrong with the store; None: sound
    rows_without_dir: list[str]  # runs whose directory is gone
    dirs_without_row: list[str]  # run directories (with a config.yaml) the store lacks


def run_dirs(root: Path) -> list[Path]:
    """The run directories under ``root``: those holding a ``config.yaml``, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file())


def diagnose(root: str | Path) -> Diagnosis:
    """Check the store under ``root`` with SQLite's ``integrity_check`` and compare its rows
    with the run directories; reads only."""
    root = Path(root)
    path = root / DB_NAME
    dirs = [p.name for p in run_dirs(root)]
    if not path.exists():
        return Diagnosis(path, None, [], dirs)
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        problem = integrity_problem(conn, full=True)
        ids: list[str] = []
        if problem is None:
            try:
                ids = [r[0] for r in conn.execute("SELECT id FROM runs")]
            except sqlite3.DatabaseError as err:
                problem = str(err)
    if problem is None:
        _mark_checked(path)
    return Diagnosis(
        path,
        problem,
        [i for i in ids if not (root / i).is_dir()],
        [d for d in dirs if d not in set(ids)] if problem is None else [],
    )


@dataclass
class Rebuilt:
    """What ``learnscope doctor --rebuild`` did."""

    moved_to: Path | None  # where the damaged store went (None: there was none)
    copied: dict[str, int]  # rows read back from the damaged store, per table
    from_dirs: list[str]  # runs whose row was re-created from their directory


def rebuild(root: str | Path) -> Rebuilt:
    """Move the store under ``root`` aside (``learnscope.db.damaged-<time>``, with its WAL
    files), create a new one, copy every row the old one still gives back, and re-create the
    row of every run directory still missing (status ``recovered``, its config from
    ``config.yaml``; its metrics are those the old store gave back). Run it while nothing
    trains under ``root``."""
    root = Path(root)
    path = root / DB_NAME
    moved = None
    if path.exists():
        moved = root / f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        for suffix in ("-wal", "-shm", ""):  # the main file last: never a WAL without it
            if Path(f"{path}{suffix}").exists():
                os.replace(f"{path}{suffix}", f"{moved}{suffix}")
    store = Store(root)
    db = store._db()
    copied = {t: 0 for t in TABLES}
    if moved is not None:
        with contextlib.closing(sqlite3.connect(f"file:{moved}?mode=ro", uri=True)) as old:
            for table in TABLES:
                copied[table] = _copy_rows(old, db, table)
    have = {r[0] for r in db.execute("SELECT id FROM runs")}
    from_dirs = []
    for d in run_dirs(root):
        if d.name in have:
            continue
        try:
            config = yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(config, dict):
            continue
        with _transaction(db):
            db.execute(
                "INSERT INTO runs (id, name, status, config, created) "
                "VALUES (?, ?, 'recovered', ?, ?)",
                (d.name, str(config.get("name", d.name)), json.dumps(config), d.stat().st_mtime),
            )
        from_dirs.append(d.name)
    store.close()
    return Rebuilt(moved, copied, from_dirs)


def _copy_rows(old: sqlite3.Connection, new: sqlite3.Connection, table: str) -> int:
    """Copy the rows of ``table`` that ``old`` still gives back (up to the first damaged
    page) into ``new``; how many."""
    n = 0
    try:
        cursor = old.execute(f"SELECT * FROM {table}")  # noqa: S608 - a name of TABLES
        while True:
            try:
                rows = cursor.fetchmany(10_000)
            except sqlite3.DatabaseError:
                break
            if not rows:
                break
            marks = ", ".join("?" * len(rows[0]))
            with _transaction(new):
                new.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)  # noqa: S608
            n += len(rows)
    except sqlite3.DatabaseError:
        pass
    return n
