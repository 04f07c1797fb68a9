"""The recordable probes the README lists (fourier_power, layer_distances, weight_norms) and the
IPR in the basis of the task's operation (the discrete log for multiplication)."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.models.analytic import analytic_mlp
from learnscope.probes.registry import PROBES, Context, Planned
from learnscope.store import Store

SITE = "layers.0.linear.weight"


def ctx(model, p, op):
    return Context(model, {}, {}, None, None, {}, p, op)


@pytest.mark.parametrize("op", ["mul", "div"])
def test_ipr_of_an_analytic_multiplication_network_is_read_over_the_discrete_log(op):
    p = 23
    net = analytic_mlp("mul", p)
    item = Planned("ipr", [SITE], 1, {"p": None, "threshold": 0.5, "basis": "auto"})
    log_basis = PROBES["ipr"].compute(ctx(net, p, op), item)
    additive = PROBES["ipr"].compute(ctx(net, p, "add"), item)
    assert log_basis[f"ipr_frac/{SITE}"] > 0.9  # every neuron but the zero-residue one
    assert additive[f"ipr_frac/{SITE}"] < 0.1  # cosines of log n are not periodic in n
    forced = PROBES["ipr"].compute(
        ctx(net, p, "add"), Planned("ipr", [SITE], 1, {**item.options, "basis": "mul"})
    )
    assert forced == log_basis


def test_fourier_power_of_an_analytic_addition_network():
    p = 11
    net = analytic_mlp("add", p)
    item = Planned("fourier_power", [SITE], 1, {"p": None, "basis": "auto"})
    out = PROBES["fourier_power"].compute(ctx(net, p, "add"), item)
    assert sorted(out) == sorted(f"fourier_power/{SITE}/k{k}" for k in range(p // 2 + 1))
    assert sum(out.values()) == pytest.approx(1.0)  # the mean of normalised spectra
    assert out[f"fourier_power/{SITE}/k0"] == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import TINY

    root = tmp_path_factory.mktemp("probe")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    res = CliRunner().invoke(app, ["run", str(path), "--runs-dir", str(root / "runs"), "-q"])
    assert res.exit_code == 0, res.output
    return root / "runs"


@pytest.mark.parametrize(
    "probe, sites, expected",
    [
        ("fourier_power", [SITE], [f"fourier_power/{SITE}/k0", f"fourier_power/{SITE}/k5"]),
        (
            "layer_distances",
            ["layers.0.hook_*"],  # pre- and post-activation of the hidden layer
            ["layer_distances/layers.0.hook_pre/n1"],
        ),
        ("weight_norms", [], [f"weight_norms/{SITE}", "weight_norms/out.weight"]),
    ],
)
def test_cli_probe_computes_the_readme_probes(trained, probe, sites, expected):
    args = ["probe", "last", "--probe", probe, "--runs-dir", str(trained)]
    for site in sites:
        args += ["--site", site]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    for name in expected:
        assert name in res.output


def test_the_readme_probes_are_recordable(trained, tmp_path, tiny_config):
    from learnscope.runner import execute

    tiny_config["probes"] = [
        {"probe": "fourier_power", "sites": [SITE]},
        {"probe": "layer_distances", "sites": ["layers.0.hook_*"]},
        {"probe": "weight_norms"},
    ]
    store = Store(tmp_path / "runs")
    result = execute(tiny_config, store)
    table = store.metric_table(result.run_id)
    assert f"fourier_power/{SITE}/k1" in table and f"weight_norms/{SITE}" in table
    assert "layer_distances/layers.0.hook_pre/n1" in table
    res = CliRunner().invoke(app, ["show", result.run_id, "--runs-dir", str(store.root)])
    assert res.exit_code == 0 and "layer_distances" in res.output


def test_ipr_of_a_transformer_embedding_reads_the_number_tokens(tmp_path):
    """A GPT on modular_seq has an embedding (vocab, d) with special tokens before the p
    number tokens: the ipr probe and the report read the rows of the number tokens, so an
    embedding whose number rows are pure cosines has IPR 1 and one whose special rows are
    noise is unaffected by them."""
    import math

    import torch

    from learnscope.config import validate_config
    from learnscope.report.build import load_runs
    from learnscope.runner import build, execute, probe_plan
    from learnscope.store import Store
    from learnscope.studies.spectrum import first_layer_spectrum

    p = 11
    cfg = {
        "task": {"name": "modular_seq", "p": p},
        "model": {"kind": "gpt", "n_layer": 1, "d_model": 16, "n_head": 2},
        "train": {"steps": 2, "eval_every": 2},
        "probes": [{"probe": "ipr", "sites": ["embed.weight"]}],
    }
    trainer = build(validate_config(cfg))
    rows = trainer.task.residue_tokens
    n = torch.arange(p, dtype=torch.float32)[:, None]
    with torch.no_grad():
        emb = trainer.model.embed.weight
        emb.normal_()  # the special tokens: noise
        emb[rows] = torch.cos(2 * math.pi * 3 * n / p + torch.linspace(0, 2, 16))
    plan = probe_plan(validate_config(cfg), trainer)
    values = plan.compute(trainer.model, trainer.objective.forward, trainer.objective.loss)
    assert values["ipr_frac/embed.weight"] == 1.0
    assert values["ipr_mean/embed.weight"] == pytest.approx(1.0, abs=1e-5)

    store = Store(tmp_path / "runs")
    result = execute(cfg, store)
    (run,) = load_runs(store, [result.run_id])
    power, ipr, what, got_p = first_layer_spectrum(run.config, run.dir)
    assert got_p == p and ipr.shape == (16,) and "token embedding" in what
    recorded = store.metric_table(result.run_id)["ipr_mean/embed.weight"].dropna().iloc[-1]
    assert float(ipr.mean()) == pytest.approx(recorded, rel=1e-5)


def test_the_probe_names_without_torch_are_the_registrys():
    from learnscope.probes.names import PROBE_NAMES
    from learnscope.probes.registry import PROBES

    assert tuple(PROBES) == PROBE_NAMES
