"""The Fourier spectrum of a modular-arithmetic run's first layer, read from its latest
checkpoint (drawn by the report's ``fourier`` and ``ipr`` panels, printed by ``learnscope show``
for such runs): how much of each neuron's weight lies at each frequency of ``Z_p`` (Nanda et al.
2023; Gromov 2023), and each neuron's inverse participation ratio over frequencies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from learnscope import checkpoint
from learnscope.errors import UserError
from learnscope.probes.spectral import (
    basis_for,
    basis_name,
    block_power,
    neuron_ipr,
    residue_weight,
)
from learnscope.tasks import make_task


def first_layer_spectrum(
    config: dict[str, Any], run_dir: Path
) -> tuple[np.ndarray, np.ndarray, str, int] | str:
    """``(fourier power (p//2+1, neurons), IPR (neurons,), what, p)`` of the first layer at the
    latest checkpoint, or a note saying why there is none.

    The weight is read by residues as the ``ipr`` probe reads it
    (:func:`learnscope.probes.residue_blocks`): for the MLP on one-hot inputs
    ``layers.0.linear.weight: (width, n_inputs * p)`` gives one ``(p, width)`` block per
    operand; a learned embedding table (the MLP's) gives its first ``p`` rows, a Transformer's
    embedding on ``modular_seq`` the rows of the p number tokens
    (:func:`learnscope.probes.spectral.residue_weight`). The power is the mean of
    :func:`learnscope.probes.fourier_power` over the blocks, the IPR
    :func:`learnscope.probes.neuron_ipr` (the same numbers the probe records), both in the
    basis the probe uses for the task's operation: ``Z_p`` for add/sub, the discrete log of
    residues ``1..p-1`` for mul/div (``what`` says which).
    """
    task = config.get("task", {})
    if task.get("name") not in ("modular", "modular_seq") or not task.get("p"):
        return "drawn for modular tasks only"
    p = int(task["p"])

    try:
        found = checkpoint.latest(Path(run_dir) / "checkpoints")
    except UserError as err:  # a file that would run code: named, never loaded
        return str(err)
    if found is None:
        return "no readable checkpoint"
    step, state = found
    weights = state["model"]
    w, what = None, ""
    first = weights.get("layers.0.linear.weight")
    if first is not None and first.dim() == 2 and first.shape[1] % p == 0 and first.shape[1] > 0:
        w, what = first, "the first-layer weights (every operand's block)"
    elif task["name"] == "modular_seq" and "embed.weight" in weights:
        seq = make_task("modular_seq", **{k: v for k, v in task.items() if k != "name"})
        t = weights["embed.weight"]
        w, what = residue_weight(t, seq.residue_tokens, len(seq.vocab)), "the token embedding"
    else:
        for name, t in weights.items():
            if name.endswith(("embed.weight", "wte.weight", "W_E")) and t.dim() == 2:
                if t.shape[0] >= p:
                    w, what = t[:p].T, f"the embedding {name}"  # (d, p): one block
                    break
    if w is None:
        return f"no first-layer weight indexed by the residues mod {p}"
    w = w.detach().double().cpu()
    if not bool(w.isfinite().all()):
        return "the weights of the last checkpoint are not finite (the run diverged)"
    basis = basis_for(task.get("op"))
    power = block_power(w, p, basis)
    what = f"{what}, step {step}; in {basis_name(basis)}"
    return power.numpy(), neuron_ipr(w, p, basis).numpy(), what, p
