"""The intrinsic dimension (Li et al. 2018) on a model whose loss depends on exactly k
directions of its parameters: `learnscope intrinsic-dim` prints d_int90 = k."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from learnscope.cli.app import app
from learnscope.config import load_config
from learnscope.errors import UserError
from learnscope.store import Store
from learnscope.studies.intrinsic_dim import measure, n_params, search


def test_cli_prints_d_int90_equal_to_k_on_the_k_direction_model(tmp_path):
    """The must-show of issue 30: a linear model on inputs of rank k = 4 (recipe
    intrinsic-dim-linear): subspaces of dimension 1, 2, 3 cannot fit it, 4 can."""
    result = CliRunner().invoke(
        app, ["intrinsic-dim", "intrinsic-dim-linear", "--runs-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "d_int90 = 4" in result.output
    assert "full model: test_acc 1.0000 (16 parameters" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 6])
def test_d_int_follows_the_rank_of_the_inputs(tmp_path, k):
    cfg = load_config("intrinsic-dim-linear", [f"task.rank={k}", "seed=1", "task.seed=1"])
    found = search(cfg, Store(tmp_path))
    assert found.d_int == k
    below = [t for t in found.trials if t.dim < k]
    assert below and all(t.value < 0.5 for t in below)  # far from the target, not near it


@pytest.mark.slow
def test_fastfood_finds_the_same_k(tmp_path):
    cfg = load_config("intrinsic-dim-linear")
    found = search(cfg, Store(tmp_path), dims=[2, 4, 8], kind="fastfood")
    assert found.d_int == 4
    assert [t.dim for t in found.trials] == [2, 4, 3]  # the grid, then bisection


def test_an_untrained_model_is_not_an_intrinsic_dimension(tmp_path):
    """One training step: the full model answers nothing within tolerance, so its 90% target
    is ~0 and the first dimension tried "reaches" it: d_int = 1, not k = 4."""
    cfg = load_config("intrinsic-dim-linear", ["train.steps=1", "train.eval_every=1"])
    found = search(cfg, Store(tmp_path), dims=[1, 2, 4])
    assert found.full < 0.1 and found.d_int == 1


def test_bad_arguments_are_one_line_errors(tmp_path):
    runner = CliRunner()
    for args, field in [
        (["--dims", "4,2"], "--dims"),
        (["--dims", "a,b"], "--dims"),
        (["--threshold", "1.5"], "--threshold"),
        (["--kind", "sparse"], "--kind"),
        (["--metric", "nope", "--dims", "1"], "--metric"),
    ]:
        result = runner.invoke(
            app, ["intrinsic-dim", "intrinsic-dim-linear", *args, "--runs-dir", str(tmp_path)]
        )
        assert result.exit_code == 2, (args, result.output)
        assert field in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["intrinsic-dim", "no-such-recipe", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "recipe" in result.output


def test_a_recipe_already_in_a_subspace_is_refused(tmp_path):
    cfg = load_config("intrinsic-dim-linear", ["train.subspace={dim: 3}"])
    with pytest.raises(UserError, match="train.subspace"):
        search(cfg, Store(tmp_path))
    assert n_params(load_config("intrinsic-dim-linear")) == 16


def test_measure_refuses_unknown_options(tmp_path):
    with pytest.raises(UserError, match="intrinsic_dim.options: unknown widths"):
        measure({"widths": [1]}, 0, Store(tmp_path))
    with pytest.raises(UserError, match="options.values"):
        measure({"values": [7]}, 0, Store(tmp_path))


def test_report_panel_draws_the_curve():
    from learnscope.report.curves import intrinsic_dim_figure

    fig = intrinsic_dim_figure([(1, 0.1), (4, 1.0), (2, 0.2), (3, 0.3)], 1.0, 0.9, 4)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3, 4]
    assert intrinsic_dim_figure([], 1.0, 0.9, None) is None
    assert not math.isnan(ax.lines[1].get_ydata()[0])
