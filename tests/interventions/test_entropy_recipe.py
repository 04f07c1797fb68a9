"""The entropy-enigma shift table (Press et al. 2024) on rft-pretrain, run by hand
(``pytest -m heavy``, ~15 minutes on a loaded 2-core VM). Figures in docs/phenomena.md."""

from __future__ import annotations

import pytest

from learnscope.config import load_config
from learnscope.interventions.entropy import estimate_shifts, mae
from learnscope.runner import execute, restore
from learnscope.store import Store

SHIFTS = [(split, noise) for split in ("test", "test_len_3") for noise in (0, 0.1, 0.2, 0.3, 0.5)]


@pytest.mark.heavy
def test_entropy_enigma_on_rft_pretrain(tmp_path):
    store = Store(tmp_path)
    run = execute(load_config("rft-pretrain"), store)
    trainer, _ = restore(store.run(run.run_id)["config"], run.dir)
    rows, traces = estimate_shifts(
        trainer.model, trainer.task, SHIFTS, steps=50, lr=0.01, record_every=5
    )
    # measured (docs/phenomena.md): the leave-one-shift-out fit beats the naive baseline
    assert mae(rows, "loo") < mae(rows, "naive")
    # and EM first raises the clean in-distribution accuracy, then lowers it
    clean = traces[0]
    best = max(range(len(clean.acc)), key=clean.acc.__getitem__)
    assert clean.acc[best] > clean.acc[0] and clean.acc[-1] < clean.acc[best]
