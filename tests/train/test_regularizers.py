from __future__ import annotations

import pytest
import torch

from learnscope.config import RegularizerConfig, validate_config
from learnscope.errors import UserError
from learnscope.runner import build
from learnscope.train.regularizers import VarianceCovarianceRegularizer, variance_covariance


def whitened(b: int, t: int, d: int) -> torch.Tensor:
    """Rows whose covariance over the batch is exactly I at every position."""
    torch.manual_seed(0)
    out = []
    for _ in range(t):
        z = torch.randn(b, d, dtype=torch.float64)
        z = z - z.mean(0)
        cov = z.T @ z / (b - 1)
        z = z @ torch.linalg.inv(torch.linalg.cholesky(cov)).T
        out.append(z)
    return torch.stack(out, dim=1)  # (b, t, d)


def test_zero_loss_and_zero_gradient_at_a_whitened_input():
    z = whitened(32, 3, 5).requires_grad_()
    l_var, l_cov = variance_covariance(z, eps=1e-3)
    (l_var + l_cov).backward()
    assert l_var.item() == 0 and l_cov.item() == pytest.approx(0, abs=1e-14)
    assert z.grad.abs().max().item() < 1e-12


def test_collapsed_input_has_positive_loss_and_a_gradient_pushing_it_apart():
    z = (torch.ones(16, 2, 4) + 1e-3 * torch.randn(16, 2, 4)).requires_grad_()
    l_var, l_cov = variance_covariance(z, eps=1e-3)
    assert l_var.item() > 0.9
    l_var.backward()
    assert z.grad.abs().sum() > 0


def test_closed_form_on_a_correlated_batch():
    """Two identical unit-variance features: C = [[1, 1], [1, 1]], L_var = 0, L_cov = 2/2."""
    x = whitened(64, 1, 1)[:, :, :1]
    z = torch.cat([x, x], dim=-1)
    l_var, l_cov = variance_covariance(z, eps=1e-12)
    assert l_var.item() == pytest.approx(0, abs=1e-6)
    assert l_cov.item() == pytest.approx(1.0)


def test_vcr_folds_positions_into_the_batch_and_seq_vcr_does_not():
    h = whitened(16, 2, 3).float()
    h[:, 1] = h[:, 0] + 5  # same spread at both positions, different means
    seq = VarianceCovarianceRegularizer(RegularizerConfig(kind="seq_vcr", layers=["x"]), ["x"], {})
    vcr = VarianceCovarianceRegularizer(RegularizerConfig(kind="vcr", layers=["x"]), ["x"], {})
    seq_loss, _ = seq({"x": h})
    vcr_loss, parts = vcr({"x": h})
    assert seq_loss.item() == pytest.approx(0, abs=1e-5)
    assert parts["vcr_var"].item() == 0 and vcr_loss.item() > 0  # the means shift is variance


def test_trainer_logs_the_terms_and_trains_the_projector(tiny_config):
    tiny_config["model"].update(depth=3)
    tiny_config["train"].update(
        steps=4,
        eval_every=2,
        batch_size=16,
        regularizers=[{"kind": "vcr", "layers": ["layers.*.hook_post"], "proj_dim": 8}],
    )
    trainer = build(validate_config(tiny_config))
    before = trainer.regularizers.terms[0].projectors[0].weight.clone()
    metrics = trainer.fit()
    assert {"reg/vcr_var", "reg/vcr_cov", "train_step/loss"} <= set(metrics)
    assert not torch.equal(before, trainer.regularizers.terms[0].projectors[0].weight)


@pytest.mark.parametrize(
    "reg, match",
    [
        ({"kind": "vicreg"}, "train.regularizers.0.kind"),
        ({"kind": "vcr", "lambda_var": -1}, "lambda_var"),
        ({"kind": "vcr", "layers": []}, "layers"),
        ({"kind": "vcr", "layers": ["nope.*"]}, "no activation site matches 'nope"),
    ],
)
def test_bad_regularizer_config_is_a_user_error(tiny_config, reg, match):
    tiny_config["train"]["regularizers"] = [reg]
    with pytest.raises(UserError, match=match):
        build(validate_config(tiny_config))
