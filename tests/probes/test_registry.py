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
