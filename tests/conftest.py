from __future__ import annotations

import pytest

TINY = {
    "name": "tiny",
    "seed": 0,
    "task": {"name": "modular", "op": "add", "p": 11, "train_fraction": 0.5},
    "model": {"kind": "mlp", "width": 32, "depth": 2, "activation": "relu"},
    "train": {"lr": 0.01, "steps": 30, "eval_every": 10, "loss": "ce"},
}


@pytest.fixture
def tiny_config() -> dict:
    import copy

    return copy.deepcopy(TINY)


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"
