"""A damaged store is detected, not crashed on: garbage in the middle of ``learnscope.db`` or a
file that is not a database gives one line naming the file and the way to recover (exit 1);
``learnscope doctor`` says what is damaged and ``doctor --rebuild`` re-creates the rows from
what the old file still gives back and from the runs' directories. A run directory deleted
while its row remains is a clean message on every command (issue 28)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.store import DB_NAME, Store


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line(res, code: int, *needles: str) -> str:
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def two_runs(tmp_path, tiny_config):
    runs = tmp_path / "runs"
    tiny_config["train"]["steps"] = 10
    tiny_config["train"]["eval_every"] = 5
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    ids = []
    for _ in range(2):
        res = invoke("run", path, "--runs-dir", runs, "-q")
        assert res.exit_code == 0, res.output
        ids.append(Store(runs).runs()["id"].iloc[-1])
    return runs, ids, path


def garble_middle(db) -> None:
    """Everything in the write-ahead log moved into the file, then a page in the middle of it
    overwritten with random bytes (a torn write, a bad sector)."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = os.path.getsize(db) // 4096
    with open(db, "r+b") as f:
        f.seek(pages // 2 * 4096)
        f.write(os.urandom(4096))


COMMANDS = [
    ("ls",),
    ("show", "last"),
    ("report", "last"),
    ("run", "CONFIG", "-q"),
    ("sweep", "ls"),
]


@pytest.mark.parametrize(
    "command", COMMANDS, ids=[c[0] + (" " + c[1] if len(c) > 1 else "") for c in COMMANDS]
)
def test_garbage_in_the_middle_of_the_store(two_runs, command):
    runs, ids, config = two_runs
    garble_middle(runs / DB_NAME)
    args = [str(config) if a == "CONFIG" else a for a in command]
    res = invoke(*args, "--runs-dir", runs)
    line = assert_one_line(res, 1, "damaged run store", "learnscope doctor --rebuild")
    assert DB_NAME in line
    assert len([p for p in runs.iterdir() if p.is_dir()]) == 2  # no new run started


def test_resume_on_a_damaged_store(two_runs):
    runs, ids, _ = two_runs
    garble_middle(runs / DB_NAME)
    res = invoke("run", "--resume", ids[0], "--runs-dir", runs, "-q")
    assert_one_line(res, 1, "damaged run store")


def test_a_file_that_is_not_a_database(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / DB_NAME).write_bytes(b"this is not a database\n" * 200)
    for command in (("ls",), ("show", "last"), ("report", "last")):
        res = invoke(*command, "--runs-dir", runs)
        assert_one_line(res, 1, "damaged run store", "not a database")
    assert (runs / DB_NAME).read_bytes().startswith(b"this is not")  # left as it was


def test_doctor_says_what_is_damaged_and_rebuilds_the_rows(two_runs):
    runs, ids, _ = two_runs
    res = invoke("doctor", "--runs-dir", runs)
    assert res.exit_code == 0 and ": ok" in res.output, res.output
    garble_middle(runs / DB_NAME)
    res = invoke("doctor", "--runs-dir", runs)
    assert res.exit_code == 1, res.output
    assert "damaged" in res.output and DB_NAME in res.output and "--rebuild" in res.output
    res = invoke("doctor", "--rebuild", "--runs-dir", runs)
    assert res.exit_code == 0, res.output
    assert "moved the old store to" in res.output
    assert (runs / DB_NAME).exists() and list(runs.glob(f"{DB_NAME}.damaged-*"))
    got = Store(runs).runs()
    assert sorted(got["id"]) == sorted(ids)  # every run has its row again
    res = invoke("doctor", "--runs-dir", runs)
    assert res.exit_code == 0 and ": ok" in res.output, res.output
    for command in (("ls",), ("show", ids[0]), ("probe", ids[1])):
        res = invoke(*command, "--runs-dir", runs)
        assert res.exit_code == 0, (command, res.output)


def test_rebuild_recreates_rows_from_the_run_directories_alone(two_runs):
    """The store file lost entirely (not a database at all): the rows come back from each run's
    config.yaml, status ``recovered``, and their checkpoints are usable."""
    runs, ids, _ = two_runs
    (runs / DB_NAME).write_bytes(os.urandom(8192))
    for suffix in ("-wal", "-shm"):
        (runs / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    res = invoke("doctor", "--rebuild", "--runs-dir", runs)
    assert res.exit_code == 0, res.output
    assert "re-created from their directories (status recovered): 2" in res.output
    got = Store(runs).runs()
    assert sorted(got["id"]) == sorted(ids) and set(got["status"]) == {"recovered"}
    res = invoke("probe", ids[0], "--runs-dir", runs)
    assert res.exit_code == 0, res.output


def test_the_check_runs_only_when_the_file_changed(two_runs, monkeypatch):
    runs, _, _ = two_runs
    Store(runs).runs()  # checked once, stamped
    calls = []
    import learnscope.store as store_mod

    real = store_mod.integrity_problem
    monkeypatch.setattr(
        store_mod, "integrity_problem", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    Store(runs).runs()
    assert calls == []  # unchanged since the last check: not checked again


# -- a run directory deleted while its row remains -----------------------------------------------


def test_a_deleted_run_directory_is_a_clean_message(two_runs):
    runs, ids, _ = two_runs
    shutil.rmtree(runs / ids[0])
    for command in (
        ("run", "--resume", ids[0], "-q"),
        ("probe", ids[0]),
        ("prune-memorizing", ids[0]),
    ):
        res = invoke(*command, "--runs-dir", runs)
        assert_one_line(res, 2, ids[0], "missing")
    for command in (("ls",), ("show", ids[0]), ("report", ids[1])):
        res = invoke(*command, "--runs-dir", runs)
        assert res.exit_code == 0, (command, res.output)
    res = invoke("doctor", "--runs-dir", runs)
    assert res.exit_code == 0 and f"run {ids[0]}: its directory is missing" in res.output
