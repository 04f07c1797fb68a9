"""The dormant-unit probe (Sokar et al. 2023) against closed-form cases, and in a run."""

from __future__ import annotations

import pytest
import torch

from learnscope.probes.dormant import dormant_fraction, dormant_scores
from learnscope.probes.names import PROBE_NAMES
from learnscope.probes.registry import PROBES


def test_scores_closed_form():
    """s_i = E|h_i| / mean_k E|h_k|: units with mean |h| of 0, 1, 2, 5 over a mean of 2."""
    h = torch.tensor([[0.0, 1.0, -2.0, 5.0], [0.0, -1.0, 2.0, 5.0]])
    assert dormant_scores(h).tolist() == [0.0, 0.5, 1.0, 2.5]
    assert dormant_fraction(h) == 0.25  # tau = 0: the dead unit only
    assert dormant_fraction(h, tau=0.5) == 0.5
    assert dormant_fraction(h, tau=1.0) == 0.75
    # the score is invariant to scaling the layer
    assert torch.allclose(dormant_scores(h * 7.0), dormant_scores(h))


def test_relu_dead_units_and_a_silent_layer():
    """ReLU units with a bias far below zero never fire: exactly those are dead."""
    torch.manual_seed(0)
    x = torch.randn(100, 4)
    lin = torch.nn.Linear(4, 10)
    with torch.no_grad():
        lin.bias[:3] = -100.0
    h = torch.relu(lin(x))
    assert dormant_fraction(h) == pytest.approx(0.3)
    assert dormant_fraction(torch.zeros(5, 6)) == 1.0
    with pytest.raises(ValueError, match="tau"):
        dormant_fraction(h, tau=-1.0)


def test_registered_with_its_option():
    assert "dormant_units" in PROBE_NAMES and "dormant_units" in PROBES
    assert PROBES["dormant_units"].options == {"tau": 0.0}


def test_recorded_in_a_run(tmp_path, tiny_config):
    from learnscope.runner import execute
    from learnscope.store import Store

    cfg = tiny_config
    cfg["probes"] = [{"probe": "dormant_units", "sites": ["layers.*.hook_post"], "tau": 0.1}]
    result = execute(cfg, Store(tmp_path))
    table = Store(tmp_path).metric_table(result.run_id)
    values = table["dormant_units/layers.0.hook_post"].dropna()
    assert len(values) == 4 and ((values >= 0) & (values <= 1)).all()
