from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

# The test models are tiny: on a 2-core machine two threads per op cost more in
# synchronisation than they gain (the KV-cache tests ran 3.5x faster on one thread). Each test
# compares two paths in one process, so the thread count changes no outcome.
torch.set_num_threads(1)

TINY = {
    "name": "tiny",
    "seed": 0,
    "task": {"name": "modular", "op": "add", "p": 11, "train_fraction": 0.5},
    "model": {"kind": "mlp", "width": 32, "depth": 2, "activation": "relu"},
    "train": {"lr": 0.01, "steps": 30, "eval_every": 10, "loss": "ce"},
}


def tiny(**changes: Any) -> dict:
    """A deep copy of :data:`TINY` with ``changes``: a dict updates that section
    (``model={"width": 24}``), anything else replaces the key (``name="mlp"``, ``probes=[]``).
    For module-level configs and parametrize; a test takes the ``tiny_config`` fixture."""
    cfg = copy.deepcopy(TINY)
    for key, value in copy.deepcopy(changes).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


@pytest.fixture
def tiny_config() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"
