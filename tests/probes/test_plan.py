from __future__ import annotations

import copy
import math
import re

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from learnscope import checkpoint
from learnscope.cli import app
from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.models.hooks import HookPoint, capture
from learnscope.probes import effective_rank, hessian_top_eigenvalue, local_rank
from learnscope.probes.plan import ProbePlan, draw_probe_batch, expand_specs, resolve
from learnscope.probes.registry import DEFAULTS, PROBES
from learnscope.runner import build, execute, probe_plan
from learnscope.store import Store

cli = CliRunner()


def invoke(*args):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


def steps_of(table, name):
    return [int(s) for s in table[name].dropna().index]


def test_defaults_recorded_at_the_eval_cadence(tiny_config, runs_dir):
    store = Store(runs_dir)
    result = execute(tiny_config, store)
    wide = store.metric_table(result.run_id)
    for name in (
        "effective_rank/layers.0.hook_post",
        "ipr_mean/layers.0.linear.weight",
        "ipr_frac/layers.0.linear.weight",
    ):
        assert steps_of(wide, name) == [0, 10, 20, 30], name
    assert 1 <= wide["effective_rank/layers.0.hook_post"].min() <= 32
    assert (
        (wide["ipr_frac/layers.0.linear.weight"] >= 0)
        & (wide["ipr_frac/layers.0.linear.weight"] <= 1)
    ).all()


def test_own_cadence_and_the_last_step(tiny_config, runs_dir):
    tiny_config["probes"] = [
        {"probe": "effective_rank", "sites": ["layers.*.hook_post"], "every": 7},
        {"probe": "matrix_entropy", "sites": ["hook_logits", "out.weight"], "alpha": 2.0},
    ]
    store = Store(runs_dir)
    wide = store.metric_table(execute(tiny_config, store).run_id)
    assert steps_of(wide, "effective_rank/layers.0.hook_post") == [0, 7, 14, 21, 28, 30]
    assert steps_of(wide, "matrix_entropy/hook_logits") == [0, 10, 20, 30]
    assert steps_of(wide, "matrix_entropy/out.weight") == [0, 10, 20, 30]
    assert not any(c.startswith("ipr_") for c in wide.columns)  # no defaults when listed


def test_probing_does_not_change_training(tiny_config, tmp_path):
    # dropout and minibatches draw from the RNG: probes must not draw from it
    tiny_config["model"]["dropout"] = 0.2
    tiny_config["train"]["batch_size"] = 16
    states = []
    for probes in (
        [],
        [
            "defaults",
            {"probe": "partial_jacobian_norm", "sites": ["hook_logits"], "exact_max": 1},
            {"probe": "hessian_top_eigenvalue", "every": 15},
            {"probe": "local_rank", "sites": ["layers.0.hook_post"], "every": 15},
        ],
    ):
        cfg = copy.deepcopy(tiny_config)
        cfg["probes"] = probes
        result = execute(cfg, Store(tmp_path / str(len(probes))))
        states.append(checkpoint.latest(result.dir / "checkpoints")[1]["model"])
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def plan_for(cfg_dict, probes):
    cfg = validate_config({**cfg_dict, "probes": probes})
    trainer = build(cfg)
    return trainer, probe_plan(cfg, trainer)


def compute(trainer, plan):
    return plan.compute(trainer.model, trainer.objective.forward, trainer.objective.loss)


def test_apjn_through_the_runner_of_a_linear_readout_is_closed_form(tiny_config):
    trainer, plan = plan_for(
        tiny_config,
        [
            {
                "probe": "partial_jacobian_norm",
                "sites": ["hook_logits"],
                "source": "layers.0.hook_post",
            }
        ],
    )
    w = trainer.model.out.weight.detach().double()
    want = (w**2).sum().item() / w.shape[0]  # ||W||_F^2 / n (the read-out has a bias: no matter)
    got = compute(trainer, plan)["partial_jacobian_norm/hook_logits"]
    assert got == pytest.approx(want, rel=1e-5)


def test_local_rank_and_hessian_through_the_runner_match_direct_calls(tiny_config):
    trainer, plan = plan_for(
        tiny_config,
        [
            {"probe": "local_rank", "sites": ["layers.0.hook_post"], "rows": 16},
            {"probe": "hessian_top_eigenvalue", "rows": 32, "iters": 30},
        ],
    )
    values = compute(trainer, plan)
    model, batch = trainer.model.eval(), plan.batch
    x = torch.nn.functional.one_hot(batch["x"][:16], 11).flatten(1).float()
    layer = model.layers[0]
    assert values["local_rank/layers.0.hook_post"] == local_rank(
        lambda h: layer.act(layer.linear(h)), x
    )
    rows = {k: v[:32] for k, v in batch.items()}
    direct = hessian_top_eigenvalue(
        lambda: trainer.objective.loss(model(rows["x"]), rows),
        list(model.parameters()),
        iters=30,
        generator=torch.Generator().manual_seed(0),
    )
    assert values["hessian_top_eigenvalue/loss"] == pytest.approx(direct, rel=1e-6)
    assert values["hessian_top_eigenvalue/loss"] > 0


def test_hessian_probe_runs_on_a_gpt_run(runs_dir):
    """The sharpness probe differentiates twice: a GPT takes its explicit attention path for
    it (the fused CPU kernel has no second derivative), and the value agrees with a direct
    call on the same path."""
    from learnscope.models import double_backward

    cfg = {
        "task": {"name": "modular_seq", "p": 7},
        "model": {"kind": "gpt", "n_layer": 1, "d_model": 16, "n_head": 2},
        "train": {"steps": 3, "eval_every": 3},
        "probes": [{"probe": "hessian_top_eigenvalue", "rows": 8, "iters": 30}],
    }
    trainer, plan = plan_for(cfg, cfg["probes"])
    value = compute(trainer, plan)["hessian_top_eigenvalue/loss"]
    model, rows = trainer.model.eval(), {k: v[:8] for k, v in plan.batch.items()}
    with double_backward(model):
        direct = hessian_top_eigenvalue(
            lambda: trainer.objective.loss(trainer.objective.forward(model, rows), rows),
            list(model.parameters()),
            iters=30,
            generator=torch.Generator().manual_seed(0),
        )
    assert value == pytest.approx(direct, rel=1e-6) and value > 0
    assert not model.blocks[0].attn.explicit  # the flag is the probe's, for its call only
    wide = Store(runs_dir).metric_table(execute(cfg, Store(runs_dir)).run_id)
    assert wide["hessian_top_eigenvalue/loss"].notna().sum() == 2  # steps 0 and 3


def test_ipr_through_the_runner_is_one_for_fourier_neurons(tiny_config):
    trainer, plan = plan_for(tiny_config, [{"probe": "ipr", "sites": ["layers.0.linear.weight"]}])
    p, width = 11, 32
    n = torch.arange(p, dtype=torch.float32)
    freq = torch.arange(width) % (p // 2) + 1
    phase = torch.rand(width, 2)
    with torch.no_grad():  # Gromov's analytic solution: one frequency per neuron in both blocks
        w = trainer.model.layers[0].linear.weight
        w[:, :p] = torch.cos(2 * math.pi * freq[:, None] * n / p + phase[:, :1])
        w[:, p:] = torch.cos(2 * math.pi * freq[:, None] * n / p + phase[:, 1:])
    values = compute(trainer, plan)
    assert values["ipr_mean/layers.0.linear.weight"] == pytest.approx(1.0, abs=1e-5)
    assert values["ipr_frac/layers.0.linear.weight"] == 1.0
    with torch.no_grad():
        w[:, :p] = torch.eye(p).repeat(3, 1)[:width]  # spikes: flat spectrum, ~2/p
        w[:, p:] = torch.eye(p).repeat(3, 1)[:width]
    values = compute(trainer, plan)
    assert values["ipr_mean/layers.0.linear.weight"] == pytest.approx((2 * p - 1) / p**2)
    assert values["ipr_frac/layers.0.linear.weight"] == 0.0


def test_labelled_probes_and_angular_distance(tiny_config):
    trainer, plan = plan_for(
        tiny_config,
        [
            {"probe": "nc1", "sites": ["layers.0.hook_post"]},
            {"probe": "ncc_accuracy", "sites": ["layers.0.hook_post"]},
            {"probe": "lidar", "sites": ["layers.0.hook_post"]},
            {"probe": "angular_distance", "sites": ["layers.0.hook_*"]},
            {"probe": "rankme", "sites": ["hook_embed"]},
        ],
    )
    values = compute(trainer, plan)
    assert set(values) == {
        "nc1/layers.0.hook_post",
        "ncc_accuracy/layers.0.hook_post",
        "lidar/layers.0.hook_post",
        "angular_distance/layers.0.hook_pre",
        "rankme/hook_embed",
    }
    assert (
        values["nc1/layers.0.hook_post"] > 0 and 0 <= values["ncc_accuracy/layers.0.hook_post"] <= 1
    )
    assert values["rankme/hook_embed"] == pytest.approx(
        effective_rank(torch.nn.functional.one_hot(plan.batch["x"], 11).flatten(1).float()),
        rel=1e-3,
    )


class ToyAttention(nn.Module):
    """A stand-in with the GPT's hook names: uniform and one-hot heads."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Module()])
        self.blocks[0].attn = nn.Module()
        self.blocks[0].attn.hook_pattern = HookPoint()
        self.blocks[0].hook_resid_post = HookPoint()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, t = tokens.shape
        pattern = torch.zeros(b, 2, t, t)
        pattern[:, 0] = 1.0 / t
        pattern[:, 1, :, 0] = 1.0
        self.blocks[0].attn.hook_pattern(pattern)
        return self.blocks[0].hook_resid_post(torch.randn(b, t, 4))


def test_gpt_defaults_give_per_head_names():
    model = ToyAttention()
    entries = expand_specs(None, "gpt")
    items = resolve(entries, model, eval_every=5, has_labels=False, modulus=None)
    batch = {"tokens": torch.zeros(3, 6, dtype=torch.long)}
    plan = ProbePlan(
        items, batch, {}, None, ["blocks.0.attn.hook_pattern", "blocks.0.hook_resid_post"]
    )
    values = plan.compute(model, lambda m, b: m(b["tokens"]), None)
    assert values["attention_entropy/blocks.0.attn.hook_pattern/h0"] == pytest.approx(math.log(6))
    assert values["attention_entropy/blocks.0.attn.hook_pattern/h1"] == 0.0
    assert 1 <= values["effective_rank/blocks.0.hook_resid_post"] <= 4
    assert [d["probe"] for d in DEFAULTS["gpt"]] == ["attention_entropy", "effective_rank"]


def test_probe_batch_is_fixed_and_seeded(tiny_config):
    trainer = build(validate_config(tiny_config))
    a = draw_probe_batch(trainer.task, "train", 20, seed=3)
    b = draw_probe_batch(trainer.task, "train", 20, seed=3)
    c = draw_probe_batch(trainer.task, "train", 20, seed=4)
    assert torch.equal(a["x"], b["x"]) and not torch.equal(a["x"], c["x"])
    assert len(draw_probe_batch(trainer.task, "test", 10_000, seed=0)["y"]) == len(
        trainer.task.split("test")
    )


BAD = [
    (
        "probes=[{probe: effective_ranks, sites: [x]}]",
        r"probes\.0\.probe: unknown probe",
        "effective_rank",
    ),
    (
        "probes=[defaults, {probe: effective_rank, sites: [nope]}]",
        r"probes\.1\.sites",
        "layers.0.hook_post",
    ),
    (
        "probes=[{probe: attention_entropy, sites: [out.weight]}]",
        r"probes\.0\.sites",
        "hook_logits",
    ),
    ("probes=[{probe: ipr, sites: [out.weight], wat: 1}]", r"probes\.0\.wat", "threshold"),
    ("probes=[{probe: effective_rank}]", r"probes\.0\.sites", "hook_embed"),
    ("probes=[{probe: hessian_top_eigenvalue, sites: [x]}]", r"probes\.0\.sites", "takes no sites"),
    ("probes=[{probe: local_rank, sites: [hook_embed]}]", r"probes\.0\.sites", "after input"),
    (
        "probes=[{probe: attention_entropy, sites: [hook_logits]}]",
        r"not an attention pattern",
        "shape",
    ),
    ("probes=[{probe: local_rank, sites: [hook_logits], rows: many}]", r"probes\.0\.rows", "int"),
    ("probe_batch.split=valid", r"probe_batch\.split", "train"),
    ("probe_batch.size=0", r"probe_batch\.size", ""),
]


@pytest.mark.parametrize("override,where,allowed", BAD)
def test_bad_probe_config_exits_2_and_writes_nothing(
    tmp_path, tiny_config, override, where, allowed
):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    runs = tmp_path / "runs"
    res = invoke("run", path, "--runs-dir", runs, "--quiet", "--set", override)
    assert res.exit_code == 2, res.output
    message = " ".join(res.output.split())
    assert re.search(where, message), message
    assert allowed in message
    assert "Traceback" not in res.output
    assert not runs.exists() or not any(p.is_dir() for p in runs.iterdir())


def test_show_and_probe_commands(tmp_path, tiny_config):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    runs = tmp_path / "runs"
    assert invoke("run", path, "--runs-dir", runs, "--quiet").exit_code == 0
    shown = invoke("show", "last", "--runs-dir", runs)
    assert shown.exit_code == 0
    assert re.search(r"effective_rank/layers\.0\.hook_post\s*│\s*4\s*│\s*30", shown.output)
    assert "ipr_mean/layers.0.linear.weight" in shown.output

    res = invoke("probe", "last", "--runs-dir", runs, "--step", 30)
    assert res.exit_code == 0, res.output
    printed = float(
        re.search(r"effective_rank/layers\.0\.hook_post\s*│\s*([-\d.e]+)", res.output)[1]
    )

    # the same number by hand: checkpoint -> model -> activations on the probe batch
    cfg = validate_config(tiny_config)
    state = checkpoint.load(checkpoint.path_for(next(runs.glob("2*")) / "checkpoints", 30))
    trainer = build(cfg)
    trainer.model.load_state_dict(state["model"])
    train = trainer.task.split("train")
    rows = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed))[:256]
    x = train["x"][rows.sort().values]
    with torch.no_grad(), capture(trainer.model.eval(), "layers.0.hook_post") as acts:
        trainer.model(x)
    assert printed == pytest.approx(effective_rank(acts["layers.0.hook_post"]), rel=1e-9)

    res = invoke(
        "probe", "last", "--runs-dir", runs, "--probe", "nc1", "--site", "layers.*.hook_post"
    )
    assert res.exit_code == 0 and "nc1/layers.0.hook_post" in res.output
    for args, message in (
        (["--probe", "nope"], "unknown probe"),
        (["--probe", "nc1"], "give --site"),
        (["--step", "7"], "no checkpoint at step 7"),
        (["--probe", "nc1", "--site", "zzz"], "no activation site matches"),
    ):
        res = invoke("probe", "last", "--runs-dir", runs, *args)
        assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output


def test_unknown_probe_in_plan_helpers_is_user_error(tiny_config):
    trainer = build(validate_config(tiny_config))
    with pytest.raises(UserError, match="allowed"):
        resolve([({"probe": "nope"}, False, 0)], trainer.model, 5, True, 11)
    assert "effective_rank" in PROBES
