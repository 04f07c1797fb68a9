from __future__ import annotations

import copy
import math

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.sweep import (
    choose_chunk,
    expand,
    group_members,
    load_spec,
    member_table,
    pivot,
    run_group,
    run_sweep,
)
from learnscope.sweep.spec import sweep_names
from tests.conftest import tiny

runner = CliRunner()

SPEC = {
    "name": "small",
    "config": tiny(model={"width": 16}, train={"steps": 20}),
    "grid": {"train.weight_decay": [0.0, 1.0], "task.train_fraction": [0.3, 0.6]},
    "seeds": 2,
    "show": {"pivot": ["train.weight_decay", "task.train_fraction"]},
}


def spec(**changes):
    s = copy.deepcopy(SPEC)
    if "grid" in changes:  # SPEC's pivot names SPEC's grid axes; load_spec checks them
        s.pop("show")
    s.update(changes)
    return s


def test_expand_grid_random_and_seeds():
    members = expand(load_spec(SPEC))
    assert len(members) == 2 * 2 * 2
    assert {(m.axes["train.weight_decay"], m.axes["task.train_fraction"]) for m in members} == {
        (0.0, 0.3),
        (0.0, 0.6),
        (1.0, 0.3),
        (1.0, 0.6),
    }
    assert [m.config.seed for m in members[:2]] == [0, 1]
    assert members[3].config.train.weight_decay == 0.0
    assert members[3].config.task.params["train_fraction"] == 0.6
    rnd = {
        "count": 5,
        "seed": 3,
        "params": {
            "train.lr": {"loguniform": [1e-4, 1e-1]},
            "model.activation": {"choice": ["relu", "quadratic"]},
            "model.init_scale": {"uniform": [0.5, 2.0]},
        },
    }
    a = expand(load_spec(spec(grid={}, seeds=1, random=rnd)))
    b = expand(load_spec(spec(grid={}, seeds=1, random=rnd)))
    assert len(a) == 5 and [m.axes for m in a] == [m.axes for m in b]
    lrs = [m.config.train.lr for m in a]
    assert all(1e-4 <= v <= 1e-1 for v in lrs) and len(set(lrs)) == 5
    # loguniform: log-spread, not crowded at the top as uniform would be
    assert min(math.log10(v) for v in lrs) < -2
    assert {m.config.model.params["activation"] for m in a} <= {"relu", "quadratic"}


def test_cases_are_one_axis_of_settings_that_change_together():
    cases = {
        "plain": {"train.weight_decay": 0.0},
        "decayed": {"train.weight_decay": 1.0, "train.lr": 0.02},
    }
    s = load_spec(spec(grid={"task.train_fraction": [0.3, 0.6]}, seeds=1, cases=cases))
    assert s.axes == ["case", "task.train_fraction"]
    members = expand(s)
    assert [m.axes["case"] for m in members] == ["plain", "plain", "decayed", "decayed"]
    last = members[-1].config
    assert (last.train.weight_decay, last.train.lr) == (1.0, 0.02)
    assert last.task.params["train_fraction"] == 0.6
    assert members[0].config.train.lr == 0.01  # the base's, untouched by the other case
    data = {"train": {"weight_decay": 1.0, "lr": 0.02}}
    assert s.case_of(data) == "decayed" and s.case_of({"train": {"lr": 0.5}}) is None
    s.cases["decayed"]["train.weight_decay"] = 0.0  # "plain" holds too: the more specific wins
    assert s.case_of({"train": {"weight_decay": 0.0, "lr": 0.02}}) == "decayed"


def test_a_seed_axis_sets_the_members_seed_and_replicates_count_from_it():
    """``seed`` on a grid (or a case) is the member's seed, not overwritten by the base's."""
    members = expand(load_spec(spec(grid={"seed": [5, 7]}, seeds=2)))
    assert [m.config.seed for m in members] == [5, 6, 7, 8]
    cased = expand(load_spec(spec(grid={}, seeds=1, cases={"s3": {"seed": 3}, "s4": {"seed": 4}})))
    assert [m.config.seed for m in cased] == [3, 4]


BAD = [
    (spec(cases={"a": {}}), "sweep.cases.a"),
    (spec(cases={"a": {"train.weight_decay": 1.0}}), "also a grid axis"),
    (spec(grid={"train.wat": [1]}), "train.wat"),
    (spec(grid={"model.widht": [1]}), "model.widht"),
    (spec(grid={"task.train_fraction": []}), "empty"),
    (spec(grid={"train.lr": ["fast"]}), "train.lr"),
    (spec(grid={"task.train_fraction": [0.5, 0.001]}), "train_fraction"),
    (spec(random={"count": 2, "params": {"train.lr": {"loguniform": [0, 1]}}}), "low > 0"),
    (spec(random={"count": 2, "params": {"train.lr": {"normal": [0, 1]}}}), "uniform"),
    (spec(random={"count": 2, "params": {"train.lr": {"uniform": [1, 0.1]}}}), "low < high"),
    (spec(seeds=0), "seeds"),
    (spec(config=None), "base"),
    (spec(grdi={}), "grdi"),
    (spec(show={"correlate": {"target": "test_acc"}}), "correlate"),
]


@pytest.mark.parametrize("bad, field", BAD)
def test_invalid_specs_fail_before_training_exit_2(bad, field, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    runs = tmp_path / "runs"
    res = runner.invoke(app, ["sweep", str(path), "--runs-dir", str(runs)])
    assert res.exit_code == 2, res.output
    assert field in res.output and "Traceback" not in res.output
    assert not runs.exists()  # nothing written


def test_unknown_sweep_name_exit_2(tmp_path):
    res = runner.invoke(app, ["sweep", "no-such-sweep", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "grokking-phase-diagram" in res.output


def test_cli_run_ls_show_pivot(tmp_path):
    path, runs = tmp_path / "s.yaml", tmp_path / "runs"
    path.write_text(yaml.safe_dump(SPEC))
    res = runner.invoke(app, ["sweep", str(path), "--runs-dir", str(runs), "-q"])
    assert res.exit_code == 0, res.output
    store = Store(runs)
    (sweep_id,) = store.sweeps()["id"]
    members = store.runs()
    assert len(members) == 8 and set(members["sweep_id"]) == {sweep_id}
    assert set(members["status"]) == {"finished"}
    res = runner.invoke(app, ["sweep", "ls", "--runs-dir", str(runs)])
    assert res.exit_code == 0 and "small" in res.output and "finished" in res.output
    res = runner.invoke(
        app,
        [
            "sweep",
            "show",
            "small",
            "--runs-dir",
            str(runs),
            "--pivot",
            "weight_decay",
            "train_fraction",
            "--value",
            "test_acc",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "test_acc" in res.output and "0.3" in res.output and "0.6" in res.output
    table = member_table(store, sweep_id)
    assert len(table) == 8 and set(table["seed"]) == {0, 1}
    grid = pivot(table, "weight_decay", "train_fraction", "train_acc")
    assert grid.shape == (2, 2)
    # each cell is the mean over the two seeds of that point
    point = table[(table["train.weight_decay"] == 1.0) & (table["task.train_fraction"] == 0.3)]
    assert grid.loc[1.0, 0.3] == pytest.approx(point["train_acc"].mean())
    res = runner.invoke(app, ["sweep", "show", "nope", "--runs-dir", str(runs)])
    assert res.exit_code == 2


def test_member_table_names_each_members_case_and_the_shown_values(tmp_path):
    cases = {"slow": {"train.lr": 0.001}, "fast": {"train.lr": 0.01}}
    s = spec(grid={"train.weight_decay": [0.0]}, seeds=1, cases=cases)
    s["show"] = {"values": ["test_loss", "train_loss", "lr"]}
    store = Store(tmp_path / "runs")
    sweep_id = run_sweep(load_spec(s), store, workers=1)
    table = member_table(store, sweep_id)
    assert sorted(table["case"]) == ["fast", "slow"]
    assert table["train_loss"].notna().all()  # a summary value only the spec's show asks for
    assert table["lr"].notna().all()  # a metric's last value (not in the summary)


def test_resume_trains_only_unfinished_members(tmp_path):
    store = Store(tmp_path / "runs")
    s = load_spec(SPEC)
    calls = []

    def stop_after_first(done, total):  # Ctrl-C once the first two members are recorded
        calls.append(done)
        if len(store.runs()) >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(s, store, max_members=2, workers=1, progress=stop_after_first)
    first = store.runs()
    assert len(first) == 2 and store.sweeps()["status"].iloc[0] == "interrupted"
    with pytest.raises(UserError, match="another spec"):
        run_sweep(load_spec(spec(name="other")), store, resume="last")
    with pytest.raises(UserError, match="matches no sweep"):
        run_sweep(s, store, resume="nope")
    sweep_id = run_sweep(s, store, max_members=2, workers=1, resume="small")
    runs = store.runs()
    assert len(runs) == 8 and set(runs["sweep_id"]) == {sweep_id}
    assert set(first["id"]) <= set(runs["id"])  # the finished two were not trained again
    assert store.sweeps()["status"].iloc[-1] == "finished" and len(store.sweeps()) == 1
    configs = sorted(yaml.safe_dump(c, sort_keys=True) for c in runs["config"])
    assert len(set(configs)) == 8


def test_groups_and_chunks(tmp_path):
    members = expand(load_spec(spec(grid={"model.width": [8, 16], "train.lr": [0.01, 0.02]})))
    groups = group_members(members, max_members=3)
    assert sorted(len(g) for g in groups) == [1, 1, 3, 3]  # 2 widths x 4, cut at 3
    assert all(len({m.config.model.params["width"] for m in g}) == 1 for g in groups)
    cfgs = [m.config.to_dict() for m in groups[0]]
    store = Store(tmp_path / "runs")
    ids = run_group(cfgs, store, "sw-a", chunk=2)
    runs = store.runs().set_index("id").loc[ids]
    assert list(runs["config"]) == cfgs and set(runs["status"]) == {"finished"}
    assert [s["ensemble_size"] for s in runs["summary"]] == [2, 2, 1]
    assert {s["mode"] for s in runs["summary"]} == {"ensemble"}
    auto = run_group(cfgs, store, "sw-b")  # 20 steps: too short to time an ensemble: in turn
    runs = store.runs().set_index("id").loc[auto]
    assert list(runs["config"]) == cfgs and {s["mode"] for s in runs["summary"]} == {"loop"}
    chunk, cost = choose_chunk([m.config for m in groups[0]], steps=2)
    assert chunk in cost and 1 in cost and all(v > 0 for v in cost.values())


def test_calibration_then_members_as_runs(monkeypatch, tmp_path):
    """A group long enough to time: the throw-away timing writes nothing, and every member
    is then one finished run, whatever the chosen chunk."""
    import learnscope.sweep.calibrate as cal

    cfgs = [m.config for m in expand(load_spec(spec(grid={"train.lr": [0.01, 0.02, 0.03]})))]
    cfgs = [c.model_copy(update={"train": c.train.model_copy(update={"steps": 200})}) for c in cfgs]
    assert cal.candidate_sizes(cfgs) == [len(cfgs)]  # 200 steps: an ensemble can be timed
    assert cal.time_alone(cfgs[0]) > 0
    store = Store(tmp_path / "runs")
    for busy in (float("inf"), -1.0):  # never busy: stacking is timed; always busy: in turn
        monkeypatch.setattr(cal, "BUSY", busy)
        ids = run_group([c.to_dict() for c in cfgs], store, f"sw-{busy}")
        runs = store.runs().set_index("id").loc[ids]
        assert list(runs["config"]) == [c.to_dict() for c in cfgs]
        assert all(r["steps"] == 200 for r in runs["summary"])
        assert set(runs["status"]) == {"finished"}
    assert len(store.runs()) == 2 * len(cfgs)


def test_ctrl_c_during_the_timing_stops_the_group(monkeypatch, tmp_path):
    import learnscope.sweep.calibrate as cal

    cfgs = [m.config for m in expand(load_spec(spec(grid={"train.lr": [0.01, 0.02, 0.03]})))]
    dicts = [
        c.model_copy(update={"train": c.train.model_copy(update={"steps": 200})}).to_dict()
        for c in cfgs
    ]

    def interrupted(cfg, step_s):  # Ctrl-C arrives while the first member is timed
        raise KeyboardInterrupt

    monkeypatch.setattr(cal, "utilisation", interrupted)
    store = Store(tmp_path / "runs")
    with pytest.raises(KeyboardInterrupt):
        run_group(dicts, store, "sw-x")
    assert len(store.runs()) == 0  # the timing is recorded nowhere, and nothing else trained


def test_process_pool_two_workers(tmp_path):
    store = Store(tmp_path / "runs")
    s = load_spec(spec(grid={"model.width": [8, 16]}, seeds=1))
    sweep_id = run_sweep(s, store, workers=2)
    runs = store.runs()
    assert len(runs) == 2 and set(runs["status"]) == {"finished"}
    assert set(runs["sweep_id"]) == {sweep_id}


def test_interrupt_mid_ensemble_then_resume(tmp_path):
    store = Store(tmp_path / "runs")
    s = load_spec(SPEC)

    def ctrl_c(done, total):  # the first report after step 0 of the first ensemble
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(s, store, max_members=2, workers=1, chunk=2, progress=ctrl_c)
    first = store.runs()
    assert list(first["status"]) == ["interrupted"] * 2
    assert all(r["steps"] < 20 for r in first["summary"])
    run_sweep(s, store, max_members=2, workers=1, chunk=2, resume="last")
    runs = store.runs()  # the interrupted members continued in their own runs: one per member
    assert (runs["status"] == "finished").sum() == 8 and len(runs) == 8
    assert set(first["id"]) <= set(runs["id"])
    assert len(member_table(store, store.sweeps()["id"].iloc[0])) == 8


def test_a_sweep_that_fails_before_training_leaves_no_record(tmp_path, monkeypatch):
    import learnscope.sweep.backends as backends

    def broken(*args, **kwargs):
        raise RuntimeError("the pool could not start")

    monkeypatch.setattr(backends, "_run_local", broken)
    store = Store(tmp_path / "runs")
    with pytest.raises(RuntimeError):
        run_sweep(load_spec(SPEC), store)
    assert len(store.sweeps()) == 0 and len(store.runs()) == 0


def test_resume_last_after_a_failed_start_continues_the_interrupted_sweep(tmp_path, monkeypatch):
    """Interrupted at 2 of 8 members, then a start that fails before training (it leaves no
    record), then --resume last: the interrupted sweep goes on, to 8 members in 8 runs."""
    import learnscope.sweep.backends as backends

    store = Store(tmp_path / "runs")
    s = load_spec(SPEC)

    def stop_after_two(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(s, store, max_members=2, workers=1, chunk=1, progress=stop_after_two)
    (interrupted,) = store.sweeps()["id"]
    real = backends._run_local
    monkeypatch.setattr(backends, "_run_local", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    with pytest.raises(OSError):
        run_sweep(load_spec(spec(name="other")), store)
    monkeypatch.setattr(backends, "_run_local", real)
    assert list(store.sweeps()["id"]) == [interrupted]  # the failed start left nothing
    assert run_sweep(s, store, workers=1, resume="last") == interrupted
    runs = store.runs()
    assert len(runs) == 8 and set(runs["status"]) == {"finished"}


def test_show_correlate_prints_final_probes_and_spearman(tmp_path):
    """``show: {correlate: ...}``: each member's final target and probe values, then the
    Spearman correlation of each probe with the target (the lidar-vs-rankme sweep)."""
    data = {
        "name": "corr",
        "config": {
            "task": {"name": "views", "dim": 6, "informative": 2, "n_classes": 2,
                     "embed_dim": 3, "n_train": 64, "n_test": 32},
            "model": {"kind": "mlp", "embed": "none", "width": 8, "depth": 2},
            "train": {"objective": "mmcr", "steps": 4, "eval_every": 2},
            "probes": [{"probe": "rankme", "sites": ["hook_logits"]}],
        },
        "grid": {"train.lr": [1e-4, 1e-3, 1e-2]},
        "show": {"correlate": {"target": "test_acc", "metrics": ["rankme/hook_logits"]}},
    }  # fmt: skip
    path, runs = tmp_path / "s.yaml", tmp_path / "runs"
    path.write_text(yaml.safe_dump(data))
    res = runner.invoke(app, ["sweep", str(path), "--runs-dir", str(runs), "-q", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "Spearman with test_acc" in res.output and "rankme/hook_logits" in res.output


@pytest.mark.parametrize("name", sweep_names())
def test_every_built_in_sweep_expands(name):
    """Each shipped sweep spec loads and every member is a valid run config (no training)."""
    members = expand(load_spec(name))
    assert members and all(m.config.train.steps >= 1 for m in members)


@pytest.mark.parametrize("name", sweep_names())
def test_every_built_in_sweep_builds_its_tasks(name):
    """Each distinct task of a shipped sweep can be built: a spec whose members validate but
    whose task refuses them (e.g. more shots than a split has pairs) fails here, not after a
    sweep has started."""
    from learnscope.tasks import make_task

    seen = set()
    for member in expand(load_spec(name)):
        key = repr(sorted(member.config.task.params.items()))
        if key not in seen:
            seen.add(key)
            make_task(member.config.task.name, **member.config.task.params)
