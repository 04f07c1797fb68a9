"""A full disk: one line, no traceback, the run marked failed (or left stale when the store
itself cannot be written), no run directory without its store row."""

from __future__ import annotations

import errno
import sqlite3

import pytest
import yaml
from typer.testing import CliRunner

from learnscope import checkpoint
from learnscope.cli import app
from learnscope.store import Store


def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "step_00000010.pt")


def write_config(tmp_path, tiny_config) -> str:
    tiny_config["train"]["checkpoint_every"] = 10
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return str(path)


def test_checkpoint_write_fails(tmp_path, tiny_config, runs_dir, monkeypatch):
    monkeypatch.setattr(checkpoint.torch, "save", full)
    res = CliRunner().invoke(
        app, ["run", write_config(tmp_path, tiny_config), "--runs-dir", str(runs_dir), "-q"]
    )
    assert res.exit_code == 1, res.output
    assert "disk full" in res.output and "Traceback" not in res.output
    (run,) = Store(runs_dir).runs().itertuples()
    assert run.status == "failed"
    assert not list((runs_dir / run.id / "checkpoints").glob(".tmp-*"))  # the temp file went


def test_store_write_fails(tmp_path, tiny_config, runs_dir, monkeypatch):
    def flush(self):
        if self._buffer:
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "flush", flush)
    res = CliRunner().invoke(
        app, ["run", write_config(tmp_path, tiny_config), "--runs-dir", str(runs_dir), "-q"]
    )
    assert res.exit_code == 1, res.output
    assert "disk full" in res.output and "Traceback" not in res.output
    monkeypatch.undo()
    store = Store(runs_dir)
    (run_id,) = store.runs()["id"]
    assert store.run(run_id)["status"] in ("failed", "running") and not store.is_live(run_id)


def test_no_orphan_directory_when_the_row_cannot_be_written(tmp_path, runs_dir, monkeypatch):
    store = Store(runs_dir)
    store.runs()  # the database exists before the disk fills
    real = store._db

    class FullDb:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            if sql.startswith("INSERT INTO runs"):
                raise sqlite3.OperationalError("database or disk is full")
            return self.conn.execute(sql, *args)

    monkeypatch.setattr(store, "_db", lambda create=True: FullDb(real(create)))
    with pytest.raises(sqlite3.OperationalError):
        store.create_run("x", {"name": "x"})
    assert [p.name for p in runs_dir.iterdir() if p.is_dir()] == []
