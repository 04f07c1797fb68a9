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

        def __getattr__(self, name):  # everything else as the real connection
            return getattr(self.conn, name)

    monkeypatch.setattr(store, "_db", lambda create=True: FullDb(real(create)))
    with pytest.raises(sqlite3.OperationalError):
        store.create_run("x", {"name": "x"})
    assert [p.name for p in runs_dir.iterdir() if p.is_dir()] == []


# -- every write path: one line, exit 1, nothing half-written (issue 28) -----------------------


def fsync_full(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


def one_line_exit_1(res, *needles: str) -> None:
    assert res.exit_code == 1, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_disk_that_fills_mid_checkpoint(tmp_path, tiny_config, runs_dir, monkeypatch):
    """The file system refuses the checkpoint's bytes (ENOSPC from the write, as a filling disk
    gives it): torch's zip writer is never torn ("unexpected pos"), the run is failed and no
    partial or temporary checkpoint is left."""
    monkeypatch.setattr("learnscope.files.os.fsync", fsync_full)
    res = CliRunner().invoke(
        app, ["run", write_config(tmp_path, tiny_config), "--runs-dir", str(runs_dir), "-q"]
    )
    one_line_exit_1(res, "disk full")
    (run,) = Store(runs_dir).runs().itertuples()
    assert run.status == "failed"
    assert not list((runs_dir / run.id / "checkpoints").iterdir())  # no step_*, no .tmp-*


def test_a_new_store_on_a_full_disk_leaves_no_empty_file(
    tmp_path, tiny_config, runs_dir, monkeypatch
):
    def wal(conn, timeout_s):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr("learnscope.store._set_wal", wal)
    res = CliRunner().invoke(
        app, ["run", write_config(tmp_path, tiny_config), "--runs-dir", str(runs_dir), "-q"]
    )
    one_line_exit_1(res, "disk full")
    assert not (runs_dir / "learnscope.db").exists()
    assert [p for p in runs_dir.iterdir() if p.is_dir()] == []


@pytest.mark.parametrize(
    "err, needle",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
        (OSError(errno.EROFS, "Read-only file system"), "cannot write"),
        (OSError(errno.EIO, "Input/output error"), "cannot write"),
        (sqlite3.OperationalError("disk I/O error"), "cannot write the run store"),
    ],
    ids=["ENOSPC", "EROFS", "EIO", "sqlite-EIO"],
)
def test_report_on_a_failing_disk_writes_nothing(
    tmp_path, tiny_config, runs_dir, monkeypatch, err, needle
):
    res = CliRunner().invoke(
        app, ["run", write_config(tmp_path, tiny_config), "--runs-dir", str(runs_dir), "-q"]
    )
    assert res.exit_code == 0, res.output

    def fail(*args, **kwargs):
        raise err

    target = (
        "learnscope.files.os.fsync" if isinstance(err, OSError) else "learnscope.store.Store.runs"
    )
    monkeypatch.setattr(target, fail)
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", "last", "--runs-dir", str(runs_dir), "-o", str(out)])
    one_line_exit_1(res, needle)
    assert not out.exists() and not (tmp_path / "r_files").exists()
    assert not list(tmp_path.glob(".tmp-*"))


def test_sweep_and_eval_on_a_full_store(tmp_path, tiny_config, runs_dir, monkeypatch):
    """A store that cannot grow: sweep and eval end in one line, exit 1."""
    res = CliRunner().invoke(
        app, ["run", write_config(tmp_path, tiny_config), "--runs-dir", str(runs_dir), "-q"]
    )
    assert res.exit_code == 0, res.output

    def full_db(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr("learnscope.store.Store.create_sweep", full_db)
    spec = {"name": "s", "config": tiny_config, "grid": {"train.lr": [0.01, 0.02]}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    res = CliRunner().invoke(app, ["sweep", str(path), "--runs-dir", str(runs_dir), "-q"])
    one_line_exit_1(res, "disk full")
    monkeypatch.setattr("learnscope.store._transaction.__enter__", full_db)
    res = CliRunner().invoke(app, ["eval", "last", "--runs-dir", str(runs_dir)])
    assert res.exit_code in (1, 2), res.output  # refused or a full store: never a traceback
    assert "Traceback" not in res.output and len(res.stderr.strip().splitlines()) == 1


# -- a real small file system (tmpfs in a user namespace), where the machine allows one --------

DRIVER = r"""
import json, os, subprocess, sys
from pathlib import Path
from typer.testing import CliRunner
from learnscope.cli import app

mnt, config, big, out = map(Path, sys.argv[1:5])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
runs, results = mnt / "runs", {}

def invoke(name, *args):
    res = CliRunner().invoke(app, [*map(str, args), "--runs-dir", str(runs)])
    results[name] = {"code": res.exit_code, "stderr": res.stderr, "output": res.output,
                     "files": sorted(str(p.relative_to(mnt)) for p in mnt.rglob("*"))}

def fill(keep):  # a filler file that leaves about ``keep`` bytes free
    filler = mnt / "filler"
    filler.unlink(missing_ok=True)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    os.close(fd)
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    os.truncate(filler, max(0, filler.stat().st_size + free - keep))

fill(0)
invoke("new store on a full disk", "run", config, "-q")
(mnt / "filler").unlink()
invoke("small run", "run", config, "-q")
fill(0)
invoke("report on a full disk", "report", "last", "-o", mnt / "r.html")
fill(200_000)
invoke("checkpoint larger than the room left", "run", big, "-q")
from learnscope import checkpoint
results["unreadable"] = []
for path in runs.glob("*/checkpoints/step_*.pt"):
    try:
        checkpoint.load(path)
    except Exception as err:
        results["unreadable"].append(f"{path}: {err}")
out.write_text(json.dumps(results))
"""


def test_a_real_full_disk(tmp_path, tiny_config):
    """On a 1 MiB tmpfs: a new store on a full disk, a report on a full disk and a checkpoint
    larger than the room left each end in one line, exit 1, with no empty store, no report and
    no partial or temporary checkpoint left (every checkpoint file loads). Needs a user
    namespace that may mount tmpfs (``unshare -rm``)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a small file system")
    probe = subprocess.run(
        ["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tmp_path)],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {probe.stderr.decode().strip()[:120]}")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    small = write_config(tmp_path, tiny_config)
    big_config = {**tiny_config, "model": {**tiny_config["model"], "width": 256}}
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(big_config))
    out = tmp_path / "out.json"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    res = subprocess.run(
        ["unshare", "-rm", sys.executable, str(driver), str(mnt), small, str(big), str(out)],
        capture_output=True,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    import json

    got = json.loads(out.read_text())
    for name in (
        "new store on a full disk",
        "report on a full disk",
        "checkpoint larger than the room left",
    ):
        r = got[name]
        assert r["code"] == 1, (name, r["output"])
        assert "Traceback" not in r["output"] and len(r["stderr"].strip().splitlines()) == 1, r
        assert r["stderr"].startswith("error: disk full"), (name, r["stderr"])
    assert got["small run"]["code"] == 0, got["small run"]["output"]
    assert "runs/learnscope.db" not in got["new store on a full disk"]["files"]
    assert not any(
        f.startswith("r.html") or f.startswith("r_files")
        for f in got["report on a full disk"]["files"]
    )
    left = got["checkpoint larger than the room left"]["files"]
    assert not any(".tmp-" in f for f in left)
    assert got["unreadable"] == []  # every checkpoint left is whole
