"""Neural redshift (Teney et al. 2024): the complexity measures on functions whose answer is
known in closed form, the ReLU scale invariance that is exact, and the CLI."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from learnscope.cli.app import app
from learnscope.errors import UserError
from learnscope.studies.redshift import (
    dct_matrix,
    grid,
    key,
    mean_frequency,
    measure,
    random_mlp,
    sign_compressibility,
    white_noise_frequency,
)

G = 32


def _axes() -> tuple[torch.Tensor, torch.Tensor]:
    x = grid(G)
    return x[:, 0].reshape(G, G), x[:, 1].reshape(G, G)


@pytest.mark.parametrize("m1,m2", [(1, 0), (3, 0), (0, 5), (7, 0), (3, 4), (6, 8)])
def test_a_pure_frequency_has_that_mean_frequency(m1, m2):
    """cos(pi m (x + 1) / 2) on the cell centres is the DCT basis vector m: |k| = m."""
    x1, x2 = _axes()
    f = torch.cos(math.pi * m1 * (x1 + 1) / 2) * torch.cos(math.pi * m2 * (x2 + 1) / 2)
    assert mean_frequency(f) == pytest.approx(math.hypot(m1, m2), abs=1e-9)


def test_a_mixture_weights_frequencies_by_magnitude():
    x1, _ = _axes()
    f = 3 * torch.cos(math.pi * 2 * (x1 + 1) / 2) + torch.cos(math.pi * 10 * (x1 + 1) / 2)
    assert mean_frequency(f) == pytest.approx((3 * 2 + 1 * 10) / 4, abs=1e-9)


def test_constant_is_zero_and_offset_and_scale_do_not_matter():
    assert mean_frequency(torch.full((G, G), 3.7)) == 0.0
    x1, x2 = _axes()
    f = torch.sin(3 * x1) * x2
    assert mean_frequency(5 * f + 2) == pytest.approx(mean_frequency(f), rel=1e-9)


def test_white_noise_is_near_the_flat_spectrum_reference():
    g = torch.Generator().manual_seed(0)
    vals = [mean_frequency(torch.randn(G, G, generator=g)) for _ in range(5)]
    assert sum(vals) / 5 == pytest.approx(white_noise_frequency(G), rel=0.05)


def test_dct_is_orthonormal():
    c = dct_matrix(16)
    assert torch.allclose(c @ c.T, torch.eye(16, dtype=torch.float64), atol=1e-12)


def test_sign_compressibility_orders_simple_below_random():
    x1, x2 = _axes()
    half = sign_compressibility(x1)  # one boundary
    g = torch.Generator().manual_seed(1)
    noise = sign_compressibility(torch.randn(64, 64, generator=g))
    assert sign_compressibility(torch.ones(64, 64)) < half < 0.5 < 0.9 < noise


def test_one_layer_relu_network_scale_invariance_is_exact():
    """With one hidden layer, weights and biases times c give c^2 W2 relu(W1 x + b1) + c b2:
    the same function up to scale and a constant, so the same mean frequency (deeper, the
    biases of later layers are scaled by c, not c^k: only close)."""
    x = grid(G)
    f1 = random_mlp("relu", 1, 16, 1.0, torch.Generator().manual_seed(4))(x).reshape(G, G)
    f5 = random_mlp("relu", 1, 16, 5.0, torch.Generator().manual_seed(4))(x).reshape(G, G)
    assert not torch.allclose(f1, f5)
    assert mean_frequency(f5) == pytest.approx(mean_frequency(f1), rel=1e-9)
    deep = [
        mean_frequency(
            random_mlp("relu", 4, 16, s, torch.Generator().manual_seed(4))(x).reshape(G, G)
        )
        for s in (1.0, 5.0)
    ]
    assert deep[1] == pytest.approx(deep[0], rel=0.5)


def test_tanh_network_grows_complex_with_scale():
    """Not exact, but far apart: deep tanh nets at weight scale 8 vs sqrt 2 (ratio ~11)."""
    out = measure(
        {
            "activations": ["tanh"],
            "depths": [6],
            "scales": [1.414, 8.0],
            "nets": 3,
            "width": 32,
            "grid": G,
        },
        seed=0,
    )
    assert out[key("freq", "tanh", 6, 8.0)] > 3 * out[key("freq", "tanh", 6, 1.414)]


def test_measure_keys_and_bad_options():
    out = measure(
        {"activations": ["relu"], "depths": [1], "scales": [1.0], "nets": 2, "width": 8, "grid": 8},
        seed=0,
    )
    assert set(out) == {
        "freq/white_noise",
        "freq/relu/depth1/scale1",
        "sign_zlib/relu/depth1/scale1",
    }
    for bad, field in [
        ({"activation": ["relu"]}, "activation"),
        ({"activations": ["softplus"]}, "activations"),
        ({"depths": [0]}, "depths"),
        ({"depths": [1.5]}, "depths"),
        ({"scales": []}, "scales"),
        ({"grid": 2}, "grid"),
        ({"nets": True}, "nets"),
    ]:
        with pytest.raises(UserError, match=field):
            measure(bad, seed=0)


def test_cli_prints_the_table_and_refuses_bad_input():
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "redshift",
            "--activation",
            "relu,sin",
            "--depth",
            "2",
            "--scale",
            "1,6",
            "--nets",
            "2",
            "--grid",
            "16",
            "--width",
            "8",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "mean freq" in res.output and "sin" in res.output
    for args, word in [
        (["--activation", "softplus"], "--activation"),
        (["--depth", "1.5"], "--depth"),
        (["--scale", "x"], "--scale"),
        (["--grid", "3"], "--grid"),
        (["--nets", "0"], "--nets"),
    ]:
        res = runner.invoke(app, ["redshift", *args])
        assert res.exit_code == 2 and word in res.output and "Traceback" not in res.output
