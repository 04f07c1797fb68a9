"""What the commands print: user text as typed (never read as markup), ids whole at 80 and 120
columns, empty stores explained, sweeps found by name, sweep recipes listed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from learnscope.cli import app, common
from learnscope.store import Store

NAMES = ["[bold]x[/]", "$\\foo$", "[/]", "plain-name-that-is-rather-long-for-a-narrow-terminal"]


@pytest.fixture(params=[80, 120])
def width(request, monkeypatch):
    """The CLI's consoles at a fixed terminal width."""
    for console in (common.console, common.err_console):
        monkeypatch.setattr(console, "_width", request.param)
    return request.param


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def config(name, wd=0.0, frac=0.3, seed=0):
    return {
        "name": name,
        "seed": seed,
        "task": {"name": "modular", "op": "add", "p": 11, "train_fraction": frac},
        "model": {"kind": "mlp", "width": 8},
        "train": {"lr": 0.01, "weight_decay": wd, "steps": 10},
    }


def fake_run(store, name, sweep_id=None, summary=None, **cfg):
    run = store.create_run(name, config(name, **cfg), sweep_id)
    store.log(run.id, 0, {"train/loss": 2.0, "test/acc": 0.1})
    store.log(run.id, 10, {"train/loss": 0.1, "test/acc": 0.9})
    store.flush()
    store.add_event(run.id, 10, "grokking", {"train_step": 5, "test_step": 10, "gap": 5})
    store.finish_run(run.id, "finished", summary or {"test_acc": 0.9, "grok_test_step": 10})
    return run.id


SPEC = {
    "name": "[red]wd[/] sweep",
    "config": config("m"),
    "grid": {"train.weight_decay": [0.0, 1.0], "task.train_fraction": [0.3, 0.5]},
    "seeds": 2,
    "show": {"pivot": ["train.weight_decay", "task.train_fraction"]},
}


def fake_sweep(store):
    """A 2 x 2 x 2-seed sweep in which seed 1 of (wd 1, frac 0.3) never grokked."""
    sweep_id = store.create_sweep(SPEC["name"], SPEC, 8)
    for wd in (0.0, 1.0):
        for frac in (0.3, 0.5):
            for seed in (0, 1):
                grok = None if (wd, frac, seed) == (1.0, 0.3, 1) else 100 + seed
                summary = {
                    "test_acc": 0.5,
                    "train_acc": 1.0,
                    "test_loss": 0.123456,
                    "grok_train_step": 20,
                    "grok_test_step": grok,
                    "mode": "ensemble",
                }
                fake_run(store, "m", sweep_id, summary, wd=wd, frac=frac, seed=seed)
    store.set_sweep_status(sweep_id, "finished")
    return sweep_id


def test_user_text_prints_literally_and_ids_whole(tmp_path, width):
    store = Store(tmp_path / "runs")
    ids = [fake_run(store, n) for n in NAMES]
    res = invoke("ls", "--runs-dir", store.root)
    assert res.exit_code == 0, res.output
    for run_id in ids:
        assert run_id in res.output
    for name in NAMES[:3]:
        assert name in res.output
    for run_id, name in zip(ids, NAMES):
        res = invoke("show", run_id, "--runs-dir", store.root)
        assert res.exit_code == 0, res.output
        assert run_id in res.output and name in res.output.replace("\n", "")
        assert "test/acc" in res.output and "grokked" in res.output


def test_errors_print_user_text_literally(tmp_path, width):
    store = Store(tmp_path / "runs")
    fake_run(store, "a")
    res = invoke("show", "[bold]nope[/]", "--runs-dir", store.root)
    assert res.exit_code == 2 and "'[bold]nope[/]' matches no run" in res.output


def test_empty_store_says_how_to_make_a_run(tmp_path, width):
    root = tmp_path / "empty"
    for args in (["show", "last"], ["report", "last"], ["probe", "last"]):
        res = invoke(*args, "--runs-dir", root)
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and "no runs in" in text, res.output
        assert "learnscope run grokking-mlp" in text and "--runs-dir" in text
    res = invoke("ls", "--runs-dir", root)
    assert res.exit_code == 0 and "learnscope run grokking-mlp" in " ".join(res.output.split())
    for args in (["sweep", "show", "last"], ["report", "--sweep", "last"]):
        res = invoke(*args, "--runs-dir", root)
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and "no sweeps in" in text and "learnscope sweep" in text
    res = invoke("sweep", "ls", "--runs-dir", root)
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "no sweeps in" in text and "grokking-phase-diagram" in text


def test_sweep_show_at_narrow_and_wide_terminals(tmp_path, width):
    store = Store(tmp_path / "runs")
    sweep_id = fake_sweep(store)
    ids = list(store.runs()["id"])
    res = invoke("sweep", "show", SPEC["name"], "--runs-dir", store.root)
    assert res.exit_code == 0, res.output
    assert sweep_id in res.output and SPEC["name"] in res.output
    for run_id in ids:
        assert run_id in res.output
    for header in ("weight", "fraction", "seed", "grok", "acc"):
        assert header in res.output
    assert all(len(line) <= width for line in res.output.splitlines())
    if width == 80:
        assert "left out at this width" in res.output and "mode" in res.output
    else:
        assert "left out" not in res.output and "ensemble" in res.output
    res = invoke("sweep", "ls", "--runs-dir", store.root)
    assert res.exit_code == 0 and sweep_id in res.output and SPEC["name"] in res.output


def test_pivot_says_how_many_seeds_grokked(tmp_path, width):
    store = Store(tmp_path / "runs")
    fake_sweep(store)
    res = invoke("sweep", "show", "last", "--runs-dir", store.root)
    assert res.exit_code == 0, res.output
    assert "100 (1/2 grokked)" in res.output  # seed 0 only: no silent mean of one seed
    assert res.output.count("/2 grokked") == 1  # the other cells: both seeds grokked
    assert "100.5" in res.output


def test_report_sweep_by_name_prefix_and_last(tmp_path, width):
    store = Store(tmp_path / "runs")
    sweep_id = fake_sweep(store)
    for ref in ("last", SPEC["name"], sweep_id[:8]):
        out = tmp_path / "r.html"
        res = invoke("report", "--sweep", ref, "-o", out, "--runs-dir", store.root)
        assert res.exit_code == 0, res.output
        assert "phase-grok-step" in (tmp_path / "r_files").as_posix() + str(
            sorted(p.name for p in (tmp_path / "r_files").iterdir())
        )
    res = invoke("report", "--sweep", "nope", "--runs-dir", store.root)
    assert res.exit_code == 2 and "matches no sweep" in res.output


def test_report_of_a_run_named_like_mathtext(tmp_path):
    store = Store(tmp_path / "runs")
    ids = [fake_run(store, "$\\foo$"), fake_run(store, "$x^$ [bold]")]  # labels: the names
    res = invoke("report", *ids, "--runs-dir", store.root, "-o", tmp_path / "r.html")
    assert res.exit_code == 0, res.output
    assert "$\\foo$" in (tmp_path / "r.html").read_text()
    assert {"loss.png", "accuracy.png"} <= {p.name for p in (tmp_path / "r_files").iterdir()}


def test_recipes_lists_the_sweep_specs_with_their_size(width):
    res = invoke("recipes")
    assert res.exit_code == 0, res.output
    assert "grokking-mlp" in res.output and "grokking-phase-diagram" in res.output
    row = next(line for line in res.output.splitlines() if "grokking-phase-diagram" in line)
    assert " 32 " in row  # 4 weight decays x 4 fractions x 2 seeds
