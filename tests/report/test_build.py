from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from matplotlib import image as mpimg
from typer.testing import CliRunner

from learnscope import checkpoint
from learnscope.cli import app
from learnscope.errors import UserError
from learnscope.report import build_report
from learnscope.report.build import label_runs, load_runs, sweep_cells
from learnscope.store import Store
from learnscope.studies.spectrum import first_layer_spectrum

SITES = ["layers.0.hook_post", "layers.1.hook_post", "layers.2.hook_post"]
ATTN = ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]


def config(**train):
    return {
        "name": "synthetic",
        "seed": 0,
        "task": {"name": "parity", "n_bits": 8},
        "model": {"kind": "mlp"},
        "train": {"lr": 1e-3, "weight_decay": 0.0, **train},
    }


def synthetic_run(store, cfg=None, sweep_id=None, probes=True, summary=None):
    """A run with curves that grok at step 400, a slingshot in the last-layer norm, a rank
    probe on three layers and attention entropies of four heads on two sites."""
    run = store.create_run("synthetic", cfg or config(), sweep_id)
    for step in range(0, 1000, 20):
        m = {
            "train/loss": math.exp(-step / 50) + 1e-4,
            "test/loss": 2.0 if step < 400 else 0.01,
            "train/acc": min(1.0, step / 100),
            "test/acc": 0.05 if step < 400 else 1.0,
            "lr": 1e-3,
            "weight_norm/layers.0.linear.weight": 5 + step / 100,
            "weight_norm/out.weight": 3 + (0.5 if step >= 600 else 0.0),
        }
        if probes:
            m.update({f"effective_rank/{s}": 50 - j * 10 - step / 50 for j, s in enumerate(SITES)})
            for s in ATTN:
                m.update({f"attention_entropy/{s}/h{h}": 2.5 - h * step / 1000 for h in range(4)})
        store.log(run.id, step, m)
    store.flush()
    store.add_event(
        run.id,
        400,
        "grokking",
        {"train_step": 100, "test_step": 400, "gap": 300, "ratio": 4.0, "threshold": 0.99},
    )
    store.add_event(
        run.id, 600, "slingshot", {"step": 600, "size": 20.0, "end_step": 640, "peak_step": 600}
    )
    store.finish_run(run.id, "finished", summary or {"test_acc": 1.0, "grok_test_step": 400})
    return run.id


def check_png(path):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.01  # not blank


def test_single_run_report_has_every_panel_and_embeds_images(tmp_path):
    store = Store(tmp_path / "runs")
    run_id = synthetic_run(store)
    rep = build_report(store, [run_id], tmp_path / "out.html")
    assert rep.panels == [
        "summary",
        "loss",
        "accuracy",
        "probe-effective_rank",
        "attention",
        "weight-norms",
    ]
    assert any("modular tasks only" in n for n in rep.notes)
    page = rep.path.read_text()
    for pid in rep.panels:
        assert f'data-panel="{pid}"' in page
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(imgs) == 5 and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert not re.search(r"(src|href)=\"(https?:|//)", page) and "<script" not in page
    assert "grokked at step 400" in page and "slingshot at step 600" in page
    assert sorted(p.name for p in rep.files) == sorted(
        f"{p}.png" for p in rep.panels if p != "summary"
    )
    assert all(p.parent == tmp_path / "out_files" for p in rep.files)
    for p in rep.files:
        check_png(p)


def test_panels_without_data_are_left_out_with_a_note(tmp_path):
    store = Store(tmp_path / "runs")
    run = store.create_run("empty", config())
    store.log(run.id, 0, {"lr": 1e-3})
    store.finish_run(run.id, "finished", {})
    rep = build_report(store, [run.id], tmp_path / "e.html")
    assert rep.panels == ["summary"] and rep.files == []
    joined = " ".join(rep.notes)
    for what in ("Loss", "Accuracy", "probes", "Attention", "Weight norms"):
        assert what in joined
    assert 'data-panel="notes"' in rep.path.read_text()


def test_several_runs_are_labelled_by_the_config_values_that_differ(tmp_path):
    store = Store(tmp_path / "runs")
    a = synthetic_run(store, config(weight_decay=0.0))
    b = synthetic_run(store, config(weight_decay=5.0))
    runs = load_runs(store, [a, b])
    label_runs(runs)
    assert [r.label for r in runs] == ["train.weight_decay=0.0", "train.weight_decay=5.0"]
    rep = build_report(store, [a, b], tmp_path / "two.html")
    assert "loss" in rep.panels and "train.weight_decay=5.0" in rep.path.read_text()


def test_sweep_phase_diagrams(tmp_path):
    store = Store(tmp_path / "runs")
    for wd in (0.0, 1.0, 5.0):
        for frac in (0.3, 0.5):
            for seed in (0, 1):
                cfg = config(weight_decay=wd)
                cfg["task"]["train_fraction"], cfg["seed"] = frac, seed
                grok = None if wd == 0.0 else 100 * wd / frac + seed
                synthetic_run(
                    store,
                    cfg,
                    "sweep-abc",
                    probes=False,
                    summary={"test_acc": 0.5 + wd / 10, "grok_test_step": grok},
                )
    runs = load_runs(store, [], "sweep-abc")
    label_runs(runs)
    cells, x, y = sweep_cells(runs, "train.weight_decay", "task.train_fraction")
    grid = cells.pivot_table(index=y, columns=x, values="grok_test_step", aggfunc="mean")
    assert grid.loc[0.5, 5.0] == pytest.approx(1000.5)  # mean over the two seeds
    assert cells[cells[x] == 0.0]["grok_test_step"].isna().all()
    rep = build_report(
        store,
        [],
        tmp_path / "sweep.html",
        sweep="sweep-abc",
        x="train.weight_decay",
        y="task.train_fraction",
    )
    assert rep.panels[:2] == ["phase-grok-step", "phase-test-acc"]  # a sweep's point first
    assert rep.panels.index("parallel") < rep.panels.index("summary")  # its cards folded below
    for p in rep.files:
        check_png(p)
    # axes picked automatically from what varies, in config order (the seed does not count)
    assert sweep_cells(runs, None, None)[1:] == ("task.train_fraction", "train.weight_decay")
    with pytest.raises(UserError, match="--x"):
        sweep_cells(runs, "train.nope", None)
    with pytest.raises(UserError, match="--sweep"):
        build_report(store, [], tmp_path / "x.html", sweep="nope")


def test_fourier_and_ipr_of_every_operand_block(tmp_path):
    """Operand a's block is one pure frequency (k = 3) for every neuron, operand b's block
    another (k = 2): the panel reads both, as the ipr probe does, so the power is 1/2 at
    k = 3 and at k = 2 and every neuron's IPR is 1."""
    p, width = 11, 6
    store = Store(tmp_path / "runs")
    cfg = {"name": "m", "task": {"name": "modular", "p": p}, "model": {"kind": "mlp"}}
    run = store.create_run("m", cfg)
    n = torch.arange(p, dtype=torch.float64)
    phases = torch.linspace(0, 3, width)[:, None]
    a_block = torch.cos(2 * math.pi * 3 * n[None, :] / p + phases)  # (width, p)
    b_block = torch.cos(2 * math.pi * 2 * n[None, :] / p - phases)
    first = torch.cat([a_block, b_block], 1)
    checkpoint.save(run.dir / "checkpoints", 7, {"model": {"layers.0.linear.weight": first}})
    store.finish_run(run.id, "finished", {})
    (r,) = load_runs(store, [run.id])
    power, ipr, what, got_p = first_layer_spectrum(r.config, r.dir)
    assert got_p == p and power.shape == (p // 2 + 1, width) and "step 7" in what
    np.testing.assert_allclose(power[3], 0.5, atol=1e-9)
    np.testing.assert_allclose(power[2], 0.5, atol=1e-9)
    np.testing.assert_allclose(ipr, 1.0, atol=1e-9)
    rep = build_report(store, [run.id], tmp_path / "m.html")
    assert "fourier" in rep.panels and "ipr" in rep.panels


def test_the_report_draws_the_ipr_the_run_recorded(tmp_path, tiny_config):
    """One IPR: the histogram's values at the last checkpoint average to the recorded
    ``ipr_mean`` of the same step."""
    from learnscope.runner import execute

    store = Store(tmp_path / "runs")
    result = execute(tiny_config, store)
    (r,) = load_runs(store, [result.run_id])
    _, ipr, what, _ = first_layer_spectrum(r.config, r.dir)
    recorded = store.metric_table(result.run_id)["ipr_mean/layers.0.linear.weight"].dropna()
    assert recorded.index[-1] == 30 and "step 30" in what
    assert float(ipr.mean()) == pytest.approx(recorded.iloc[-1], rel=1e-6)


def test_real_tiny_modular_run_report(tmp_path, tiny_config):
    from learnscope.runner import execute

    store = Store(tmp_path / "runs")
    result = execute(tiny_config, store)
    rep = build_report(store, ["last"])
    assert rep.path == result.dir / "report.html"
    assert {"summary", "loss", "accuracy", "weight-norms", "fourier", "ipr"} <= set(rep.panels)
    for p in rep.files:
        check_png(p)


runner = CliRunner()


def test_cli_report_and_its_errors(tmp_path):
    store = Store(tmp_path / "runs")
    run_id = synthetic_run(store)
    rd = str(tmp_path / "runs")
    res = runner.invoke(
        app, ["report", run_id[:17], "--runs-dir", rd, "-o", str(tmp_path / "r.html")]
    )
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and (tmp_path / "r_files" / "loss.png").exists()
    for args, field in [
        (["report", "nope"], "run"),
        (["report"], "RUN"),
        (["report", run_id, "-o", str(tmp_path / "missing" / "r.html")], "-o"),
        (["report", run_id, "--sweep", "nope"], "--sweep"),
        (["report", run_id, "--x", "train.lr"], "--x"),
    ]:
        res = runner.invoke(app, [*args, "--runs-dir", rd])
        assert res.exit_code == 2 and field in res.output and "Traceback" not in res.output
    assert not (tmp_path / "missing").exists()


def test_cli_report_unwritable_file(tmp_path):
    store = Store(tmp_path / "runs")
    run_id = synthetic_run(store, probes=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "r.html").mkdir()  # a directory where the file should go
    res = runner.invoke(
        app, ["report", run_id, "--runs-dir", str(tmp_path / "runs"), "-o", str(locked / "r.html")]
    )
    assert res.exit_code == 2 and "cannot write" in res.output


def test_report_of_a_diverged_run(tmp_path, tiny_config):
    from learnscope.runner import execute
    from tests.cli.test_live import PoisonAt

    store = Store(tmp_path / "runs")
    tiny_config["train"].update(steps=40, eval_every=5)
    result = execute(tiny_config, store, [PoisonAt(12)])
    assert result.status == "diverged"
    rep = build_report(store, [result.run_id], tmp_path / "d.html")
    page = rep.path.read_text()
    assert "diverged at step 13 (train_step/loss not finite)" in page
    assert {"loss", "accuracy", "weight-norms"} <= set(rep.panels) and "fourier" not in rep.panels
    assert any("not finite (the run diverged)" in n for n in rep.notes)
    for p in rep.files:
        check_png(p)


def test_phase_diagram_says_how_many_seeds_grokked():
    """Two seeds per cell, one of which never grokked at (wd 1, frac 0.3): the cell shows the
    other seed's step *and* 1/2 grokked, hatched; full cells carry no count."""
    import pandas as pd

    from learnscope.report import plots

    cells = pd.DataFrame(
        [
            {
                "wd": wd,
                "frac": frac,
                "grok_test_step": None if (wd, frac, s) == (1, 0.3, 1) else 100.0,
            }
            for wd in (0, 1)
            for frac in (0.3, 0.5)
            for s in (0, 1)
        ]
    )
    cells["grok_test_step"] = pd.to_numeric(cells["grok_test_step"])
    fig = plots.phase_diagram(cells, "wd", "frac", "grok_test_step", "t", word="grokked")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("100\n1/2 grokked") == 1 and texts.count("100") == 3
    assert sum(p.get_hatch() == "//" for p in fig.axes[0].patches) == 1


def test_report_ipr_of_multiplication_is_in_the_discrete_log_basis(tmp_path):
    """The report's IPR panel reads a mul network as the ipr probe does: over the discrete log
    (an analytic multiplication network: IPR ~1), and says which basis it used."""
    from learnscope.models.analytic import analytic_mlp
    from learnscope.probes.registry import PROBES, Context, Planned

    p = 23
    net = analytic_mlp("mul", p)
    first = net.layers[0].linear.weight.detach()
    store = Store(tmp_path / "runs")
    cfg = {"name": "m", "task": {"name": "modular", "op": "mul", "p": p}, "model": {"kind": "mlp"}}
    run = store.create_run("m", cfg)
    checkpoint.save(run.dir / "checkpoints", 5, {"model": {"layers.0.linear.weight": first}})
    store.finish_run(run.id, "finished", {})
    (r,) = load_runs(store, [run.id])
    power, ipr, what, _ = first_layer_spectrum(r.config, r.dir)
    assert "discrete-log" in what and power.shape[0] == (p - 1) // 2 + 1
    assert float((ipr > 0.5).mean()) > 0.9
    item = Planned("ipr", ["w"], 1, {"p": None, "threshold": 0.5, "basis": "auto"})
    probe = PROBES["ipr"].compute(
        Context(net, {}, {}, None, None, {}, p, "mul"),
        Planned("ipr", ["layers.0.linear.weight"], 1, item.options),
    )
    assert probe["ipr_mean/layers.0.linear.weight"] == pytest.approx(float(ipr.mean()))
    rep = build_report(store, [run.id], tmp_path / "m.html")
    assert "discrete-log basis" in rep.path.read_text()
