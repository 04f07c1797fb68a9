"""The CPU training options of issue 32 item 5: ``train.precision: bf16`` autocasts on the CPU,
``train.compile: true`` trains through ``torch.compile``; each gives the fp32 eager loss curve
within its tolerance (bf16: its 8-bit mantissa; compile: float reassociation only)."""

from __future__ import annotations

import pytest
import torch

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.runner import build

SEQ = {
    "name": "tiny-seq",
    "seed": 0,
    "task": {"name": "modular_seq", "op": "add", "p": 7, "train_fraction": 0.8},
    "model": {"kind": "gpt", "n_layer": 1, "d_model": 32, "n_head": 2},
    "train": {"lr": 3e-3, "steps": 10, "eval_every": 10, "batch_size": 16, "device": "cpu"},
    "probes": [],
}


def trainer(**train):
    cfg = {**SEQ, "train": {**SEQ["train"], **train}}
    return build(validate_config(cfg))


def curve(tr, steps: int = 6) -> list[float]:
    """The training loss of ``steps`` steps on the same rows, as the loop takes them."""
    batch = tr.splits["train"].rows(torch.arange(16))
    out = []
    for _ in range(steps):
        tr.model.train()
        with tr.autocast():
            loss = tr.objective.train_loss(tr.train_model, batch)
        tr.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tr.optimizer.step()
        out.append(loss.item())
    return out


def test_bf16_autocasts_on_the_cpu_and_follows_the_fp32_curve():
    tr = trainer(precision="bf16")
    x = torch.randn(4, 8)
    with tr.autocast():
        assert torch.nn.functional.linear(x, torch.randn(3, 8)).dtype == torch.bfloat16
    ref, got = curve(trainer()), curve(tr)
    assert ref[-1] < ref[0] and got[-1] < got[0]  # both learn
    # bf16 keeps 8 bits of mantissa: the curves agree to about 1e-2, not to float32's 1e-6
    assert max(abs(a - b) / a for a, b in zip(ref, got, strict=True)) < 0.03
    assert ref != got  # autocast did change the arithmetic


@pytest.mark.parametrize("precision", ["fp32", "auto", "fp16"])
def test_other_precisions_stay_fp32_on_the_cpu(precision):
    tr = trainer(precision=precision)
    with tr.autocast():
        assert torch.nn.functional.linear(torch.randn(2, 3), torch.randn(2, 3)).dtype == (
            torch.float32
        )


def test_compile_refuses_regularizers():
    with pytest.raises(UserError, match="train.compile"):
        trainer(compile=True, regularizers=[{"kind": "seq_vcr"}])


@pytest.mark.slow
def test_compile_gives_the_eager_curve():
    eager, compiled = trainer(), trainer(compile=True)
    assert compiled.train_model is not compiled.model  # the compiled wrapper trains ...
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())  # ... same keys
    ref, got = curve(eager), curve(compiled)
    assert max(abs(a - b) / a for a, b in zip(ref, got, strict=True)) < 1e-4
