from __future__ import annotations

import io
import math

import pytest
import torch
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.cli.live import EventWatcher
from learnscope.config import load_config
from learnscope.events import describe
from learnscope.models import site_sizes
from learnscope.runner import build, execute
from learnscope.store import Store
from learnscope.train.callbacks import TensorBoardSink
from learnscope.train.loop import Callback


class PoisonAt(Callback):
    """Sets every weight to NaN after optimiser step ``at``: the next loss is NaN."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer, step, loss):
        if step == self.at:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.fill_(float("nan"))


def test_nan_loss_stops_the_run_at_once_and_keeps_metrics(tiny_config, runs_dir):
    tiny_config["train"].update(steps=100, eval_every=5)
    tiny_config["probes"] = []
    store = Store(runs_dir)
    result = execute(tiny_config, store, [PoisonAt(12)])
    assert result.status == "diverged"
    # step 13's loss is computed on the poisoned weights; the loop stops right there
    assert result.summary["steps"] == 13 and result.summary["diverged_step"] == 13
    assert store.run(result.run_id)["status"] == "diverged"
    table = store.metric_table(result.run_id)
    assert list(table.index) == [0, 5, 10, 13]  # every eval before, and one at the end
    assert table.loc[10, "train/acc"] >= 0 and math.isnan(table.loc[13, "train/loss"])
    ev = store.events(result.run_id)
    div = ev[ev["kind"] == "divergence"].iloc[0]
    assert div["step"] == 13 and div["data"]["metric"] == "train_step/loss"


def test_divergence_at_a_probe_step_is_still_diverged(tiny_config, runs_dir):
    """The default probes run on the poisoned weights at step 15 (a probe step) and the run
    still ends as diverged, not failed."""
    tiny_config["train"].update(steps=100, eval_every=5)
    result = execute(tiny_config, Store(runs_dir), [PoisonAt(14)])
    assert result.status == "diverged" and result.summary["diverged_step"] == 15


def test_healthy_run_is_not_diverged(tiny_config, runs_dir):
    tiny_config["probes"] = []
    result = execute(tiny_config, Store(runs_dir))
    assert result.status == "finished" and "diverged_step" not in result.summary
    assert not [e for e in result.events if e.kind == "divergence"]


def test_cli_exits_1_with_the_step_when_the_loss_explodes(tmp_path, tiny_config, runs_dir):
    tiny_config["model"]["activation"] = "quadratic"
    tiny_config["train"].update(optimizer="sgd", loss="mse", lr=1e6, steps=200)
    path = tmp_path / "boom.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    res = CliRunner().invoke(app, ["run", str(path), "--runs-dir", str(runs_dir), "-q"])
    assert res.exit_code == 1, res.output
    runs = Store(runs_dir).runs()
    step = runs["summary"][0]["diverged_step"]
    assert step < 200 and f"diverged at step {step}" in res.output
    assert runs["status"][0] == "diverged"
    res = CliRunner().invoke(app, ["show", "last", "--runs-dir", str(runs_dir)])
    assert res.exit_code == 0 and "divergence" in res.output and "diverged" in res.output


def test_event_watcher_prints_each_event_once_when_it_fires():
    said: list[tuple[int, str]] = []
    watcher = EventWatcher(emit=lambda e: said.append((step, describe(e))), every_s=0.0)
    for step in range(0, 100, 10):
        train = 1.0 if step >= 20 else 0.5
        test = 1.0 if step >= 70 else 0.1
        watcher.add(step, {"train/acc": train, "test/acc": test, "lr": 1e-3})
    assert said == [
        (20, "fitted the training set at step 20 (test not yet)"),
        (70, "grokked at step 70 (train fitted at step 20, 3.5x after fitting)"),
    ]


def test_site_sizes_of_the_mlp(tiny_config):
    from learnscope.config import validate_config

    trainer = build(validate_config(tiny_config))
    batch = trainer.splits["train"].rows(torch.arange(4))
    sizes = site_sizes(trainer.model, trainer.objective.forward, batch)
    assert sizes["layers.0.hook_post"] == 32 and sizes["hook_logits"] == 11
    assert sizes["layers.0.linear.weight"] == 22 and sizes["out.weight"] == 11


def test_tensorboard_sink_writes_the_scalars(tiny_config, runs_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = lambda run_id: TensorBoardSink(tmp_path / "tb", run_id)  # noqa: E731
    result = execute(tiny_config, Store(runs_dir), [sink])
    files = list((tmp_path / "tb" / result.run_id).glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = EventAccumulator(str(files[0].parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/acc", "weight_norm/out.weight", "effective_rank/layers.0.hook_post"} <= set(tags)
    got = [(s.step, s.value) for s in acc.Scalars("test/acc")]
    table = Store(runs_dir).metric_table(result.run_id)
    assert [s for s, _ in got] == [0, 10, 20, 30]
    assert [v for _, v in got] == pytest.approx(list(table["test/acc"]), rel=1e-6)
    # the probe runner's values, at the steps it recorded them
    rank = [(s.step, s.value) for s in acc.Scalars("effective_rank/layers.0.hook_post")]
    stored = table["effective_rank/layers.0.hook_post"].dropna()
    assert [s for s, _ in rank] == list(stored.index)
    assert [v for _, v in rank] == pytest.approx(list(stored), rel=1e-6)


def test_cli_tensorboard_option(tmp_path, tiny_config, runs_dir):
    tiny_config["probes"] = []
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    res = CliRunner().invoke(
        app, ["run", str(path), "--runs-dir", str(runs_dir), "--tensorboard", str(tmp_path / "tb")]
    )
    assert res.exit_code == 0, res.output
    assert list((tmp_path / "tb").glob("*/events.out.tfevents.*"))


def test_live_view_prints_the_event_when_it_fires(runs_dir):
    """A real (short) grokking-mlp run with the progress bar: the event line appears."""
    args = ["run", "grokking-mlp", "--set", "task.p=23", "--set", "model.width=64"]
    args += ["--set", "probes=[]"]
    res = CliRunner().invoke(app, [*args, "--set", "train.steps=60", "--runs-dir", str(runs_dir)])
    assert res.exit_code == 0, res.output
    step = Store(runs_dir).runs()["summary"][0]["grok_train_step"]
    assert f"event fitted the training set at step {step} (test not yet)" in res.output


def test_progress_line_shows_latest_probe_values():
    from rich.console import Console

    from learnscope.cli.live import LiveProgress

    bar = LiveProgress(Console(file=io.StringIO()), "x")
    bar.task_id = bar.progress.add_task("x", total=10, metrics="")
    metrics = {"train/loss": 0.5, "test/acc": 0.25, "effective_rank/layers.0.hook_post": 12.34}
    bar.on_metrics(None, 5, metrics)
    text = bar.progress.tasks[0].fields["metrics"]
    assert "train loss 0.5" in text and "erank(l0.post) 12.3" in text


def test_live_view_sees_the_probe_runner_values(tiny_config, runs_dir):
    """The MLP's default probes (effective rank, IPR) reach the progress line and the live
    event table at the steps the probe runner recorded them."""
    from rich.console import Console

    from learnscope.cli.live import LiveProgress

    bar = LiveProgress(Console(file=io.StringIO(), width=300), "x")
    execute(tiny_config, Store(runs_dir), [bar])
    assert "erank(l0.post)" in bar.progress.tasks[0].fields["metrics"]
    assert "effective_rank/layers.0.hook_post" in bar.watcher.rows[0]
    assert "effective_rank/layers.0.hook_post" in bar.watcher.rows[30]


def test_slowdown_warning_with_a_fake_clock():
    from learnscope.cli.live import SlowdownWatch

    now = [0.0]
    watch = SlowdownWatch(clock=lambda: now[0], window_s=2.0)
    said = []
    for step in range(1, 400):  # 100 steps/s for 2 s, 60 steps/s (no warning), then 20
        now[0] += 0.01 if step <= 200 else 1 / 60 if step <= 320 else 0.05
        said.append(watch.observe(step))
    warnings = [s for s in said if s]
    assert len(warnings) == 1 and "20 steps/s now against 99.7" in warnings[0]
    assert said.index(warnings[0]) > 320  # only once the slow window is measured
    assert "threads" in warnings[0]


def test_run_header_and_metrics_line_at_80_columns(runs_dir, tiny_config):
    """The header names torch's thread count; the metrics are on their own line, whole."""
    from rich.console import Console

    from learnscope.cli.live import LiveProgress

    out = io.StringIO()
    tiny_config["name"] = "[bold]x[/] $\\foo$"
    bar = LiveProgress(Console(file=out, width=80), tiny_config["name"])
    execute(tiny_config, Store(runs_dir), [bar])
    text = out.getvalue()
    assert f"torch threads {torch.get_num_threads()}" in text
    assert "[bold]x[/] $\\foo$" in text
    last = bar.progress.tasks[0].fields["metrics"]
    assert "test" in last and last in " ".join(text.split())  # wrapped, never cut


def test_resumed_run_prints_only_new_events_with_the_runs_own_steps(tmp_path, runs_dir):
    """Resuming a finished grokking run (more steps) prints no grokking line again (it fired
    before), and a run resumed before its test set was learned prints the grokking step and
    ratio of the whole run, not of the resumed segment."""
    args = ["--set", "task.p=23", "--set", "model.width=128", "--set", "model.init_std=0.1"]
    args += [
        "--set",
        "train.stop_when=[]",
        "--set",
        "probes=[]",
        "--set",
        "task.train_fraction=0.5",
    ]
    first = CliRunner().invoke(
        app, ["run", "grokking-mlp", *args, "--set", "train.steps=60", "--runs-dir", str(runs_dir)]
    )
    assert first.exit_code == 0, first.output
    store = Store(runs_dir)
    (run_id,) = store.runs()["id"]
    fitted = store.run(run_id)["summary"]["grok_train_step"]
    assert f"fitted the training set at step {fitted}" in first.output
    assert store.run(run_id)["summary"].get("grok_test_step") is None  # not yet at step 60
    resumed = CliRunner().invoke(
        app, ["run", "--resume", run_id, "--set", "train.steps=300", "--runs-dir", str(runs_dir)]
    )
    assert resumed.exit_code == 0, resumed.output
    summary = Store(runs_dir).run(run_id)["summary"]
    grok = summary["grok_test_step"]
    assert grok > 60 and "fitted the training set" not in resumed.output
    line = f"grokked at step {grok} (train fitted at step {fitted}"
    assert line in resumed.output and "1x after fitting" not in resumed.output, resumed.output
    again = CliRunner().invoke(
        app, ["run", "--resume", run_id, "--set", "train.steps=310", "--runs-dir", str(runs_dir)]
    )
    assert again.exit_code == 0 and "grokked at step" not in again.output, again.output


def test_a_run_that_stops_early_fills_its_bar_and_says_where(runs_dir):
    """grokking-mlp stops once it has grokked (train.stop_when): the bar ends full, at the step
    it stopped, not at 100 of 300."""
    from rich.console import Console

    from learnscope.cli.live import LiveProgress

    cfg = load_config("grokking-mlp", ["probes=[]"])
    bar = LiveProgress(Console(file=io.StringIO(), width=200), cfg.name)
    result = execute(cfg, Store(runs_dir), [bar])
    assert result.status == "stopped" and result.summary["steps"] < cfg.train.steps
    (task,) = bar.progress.tasks
    assert task.completed == task.total == result.summary["steps"]
    assert task.description.endswith(f"(stopped at step {task.total:.0f} of {cfg.train.steps})")


def test_ctrl_c_before_training_says_so_and_exits_130(runs_dir, tiny_config, tmp_path, monkeypatch):
    import learnscope.runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(learnscope.runner, "execute", interrupted)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config))
    res = CliRunner().invoke(app, ["run", str(recipe), "--runs-dir", str(runs_dir)])
    assert res.exit_code == 130
    assert "interrupted before training started" in res.output
