"""Continual learning (learnscope.train.continual): the Fisher against closed forms, the EWC
penalty, shrink and perturb, continual backprop's replacements, task switches in a run."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnscope.config import validate_config
from learnscope.errors import UserError
from learnscope.models import build_model
from learnscope.runner import build, execute
from learnscope.store import Store
from learnscope.train.continual import (
    ContinualBackprop,
    EWCObjective,
    fisher_diagonal,
    shrink_perturb_,
    summary,
)
from learnscope.train.ensemble import ensemble_key
from learnscope.train.loop import Callback

torch.set_default_dtype(torch.float32)


def _linear(d: int, k: int, bias: bool = False, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, k, bias=bias).double()


# -- the Fisher against closed forms ------------------------------------------------------------


def test_fisher_linear_gaussian_is_x_t_x_over_n():
    """f(x) = W x with p(y | x) = N(W x, I): F(W[k, j]) = mean_x x_j^2 = diag(X^T X / n)_j."""
    x = torch.randn(40, 5, dtype=torch.float64)
    lin = _linear(5, 3)
    got = fisher_diagonal(lin, x, torch.zeros(40, dtype=torch.long), "gaussian", "true")
    want = torch.diagonal(x.T @ x / len(x))
    assert torch.allclose(got["weight"], want.expand(3, -1), atol=1e-10)


def test_fisher_linear_gaussian_bias_and_empirical():
    """With a bias, F(b_k) = 1; the empirical Fisher is mean_x (f_k - t_k)^2 x_j^2."""
    x = torch.randn(30, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (30,))
    lin = _linear(4, 2, bias=True)
    true = fisher_diagonal(lin, x, y, "gaussian", "true")
    assert torch.allclose(true["bias"], torch.ones(2, dtype=torch.float64))
    emp = fisher_diagonal(lin, x, y, "gaussian", "empirical")
    with torch.no_grad():
        r = lin(x) - F.one_hot(y, 2).double()  # (n, K)
    # one output's residual times x: rows couple only through their own output
    want = (r[:, :, None] ** 2 * x[:, None, :] ** 2).mean(0)
    assert torch.allclose(emp["weight"], want, atol=1e-10)


def test_fisher_linear_softmax_closed_forms():
    """logits = W x, p = softmax: true F(W[c, j]) = mean_x p_c (1 - p_c) x_j^2; empirical
    F(W[c, j]) = mean_x (1[y = c] - p_c)^2 x_j^2."""
    x = torch.randn(50, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (50,))
    lin = _linear(3, 4)
    with torch.no_grad():
        p = F.softmax(lin(x), -1)  # (n, C)
    true = fisher_diagonal(lin, x, y, "categorical", "true")["weight"]
    want = (p * (1 - p))[:, :, None] * x[:, None, :] ** 2
    assert torch.allclose(true, want.mean(0), atol=1e-10)
    emp = fisher_diagonal(lin, x, y, "categorical", "empirical")["weight"]
    r = F.one_hot(y, 4).double() - p
    assert torch.allclose(emp, (r[:, :, None] ** 2 * x[:, None, :] ** 2).mean(0), atol=1e-10)


def test_fisher_of_an_mlp_on_tokens_matches_a_loop_of_backward_passes():
    """The one-hot MLP (no vmap over its inputs): each example's sum_y p_y g_y^2 by autograd."""
    model = build_model("mlp", {"width": 8, "depth": 2}, {"n_inputs": 2, "vocab": 5, "n_out": 3})
    x = torch.randint(0, 5, (6, 2))
    y = torch.randint(0, 3, (6,))
    got = fisher_diagonal(model, x, y)
    want = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        logp = F.log_softmax(model(x[i : i + 1])[0], -1)
        for c in range(3):
            grads = torch.autograd.grad(logp[c], list(model.parameters()), retain_graph=True)
            for (n, _), g in zip(model.named_parameters(), grads):
                want[n] += logp[c].exp().item() * g**2 / len(x)
    for n in want:
        assert torch.allclose(got[n], want[n], atol=1e-6), n


# -- the EWC penalty ------------------------------------------------------------------------------


def test_ewc_penalty_equals_the_sum_over_tasks():
    """lambda/2 sum_t sum_i F^t_i (theta_i - theta*^t_i)^2, value and gradient, after two tasks."""
    torch.manual_seed(1)
    lin = nn.Linear(3, 2)
    ewc = EWCObjective(None, lam=7.0)
    anchors, fishers = [], []
    for _ in range(2):
        with torch.no_grad():
            for p in lin.parameters():
                p.normal_()
        fisher = {n: torch.rand_like(p) for n, p in lin.named_parameters()}
        ewc.consolidate(lin, fisher)
        anchors.append({n: p.detach().clone() for n, p in lin.named_parameters()})
        fishers.append(fisher)
    with torch.no_grad():
        for p in lin.parameters():
            p.normal_()
    got = ewc.penalty(lin)
    want = sum(
        3.5 * (f[n] * (p - a[n]) ** 2).sum()
        for f, a in zip(fishers, anchors)
        for n, p in lin.named_parameters()
    )
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    g1 = torch.autograd.grad(got, list(lin.parameters()))
    g2 = torch.autograd.grad(want, list(lin.parameters()))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-5)
    # at the only anchor, with one task, the penalty is 0
    one = EWCObjective(None, lam=1.0)
    one.consolidate(lin, {n: torch.ones_like(p) for n, p in lin.named_parameters()})
    assert one.penalty(lin).item() == pytest.approx(0.0, abs=1e-6)


def test_ewc_state_round_trip():
    inner = SimpleNamespace(state_dict=lambda: {}, load_state_dict=lambda s, m: None)
    lin = nn.Linear(2, 2)
    ewc = EWCObjective(inner, lam=3.0)
    ewc.consolidate(lin, {n: torch.rand_like(p) for n, p in lin.named_parameters()})
    with torch.no_grad():
        lin.weight.add_(1.0)
    again = EWCObjective(inner, lam=3.0)
    again.load_state_dict(ewc.state_dict(), lin)
    assert again.tasks == 1
    assert again.penalty(lin).item() == pytest.approx(ewc.penalty(lin).item())


# -- plasticity --------------------------------------------------------------------------------


def test_shrink_perturb_arithmetic():
    w0, b0 = torch.tensor([[1.0, -2.0], [4.0, 0.5]]), torch.tensor([3.0])
    w, b = w0.clone(), b0.clone()
    shrink_perturb_([w, b], 0.9, 0.0, torch.Generator())
    assert torch.equal(w, w0 * 0.9) and torch.equal(b, b0 * 0.9)
    assert torch.allclose(w, torch.tensor([[0.9, -1.8], [3.6, 0.45]]))
    w = torch.ones(1000)
    shrink_perturb_([w], 0.5, 0.1, torch.Generator().manual_seed(3))
    eps = torch.randn(1000, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(w, 0.5 + 0.1 * eps)


def _mlp(width: int = 8):
    torch.manual_seed(0)
    return build_model("mlp", {"width": width, "depth": 3}, {"n_inputs": 2, "vocab": 5, "n_out": 3})


def test_continual_backprop_replaces_exactly_the_lowest_utility_mature_units():
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.randint(0, 5, (16, 2))
    F.cross_entropy(model(x), torch.zeros(16, dtype=torch.long)).backward()
    opt.step()  # the optimiser now has moments to reset
    cbp = ContinualBackprop(model, rate=0.25, maturity=10, decay=0.9)
    cbp.age[0][:] = 20
    cbp.age[0][7] = 5  # immature: never replaced, however low its utility
    cbp.util[0][:] = torch.tensor([5.0, 6, 0.1, 7, 8, 0.2, 9, 0.0])
    cbp.mean[0][:] = torch.arange(8.0)
    lin, nxt = model.layers[0].linear, model.layers[1].linear
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m_in = opt.state[lin.weight]["exp_avg"].clone()
    m_out = opt.state[nxt.weight]["exp_avg"].clone()
    units = cbp._replace(0, opt)  # 7 eligible units x 0.25 = 1.75: one unit now
    assert units.tolist() == [2]
    units = cbp._replace(0, opt)  # 1.75 - 1 + 6 x 0.25 = 2.25: two more (2 is immature now)
    assert sorted(units.tolist()) == [0, 5]
    chosen, kept = [0, 2, 5], [1, 3, 4, 6, 7]
    w_in, w_out = before["layers.0.linear.weight"], before["layers.1.linear.weight"]
    assert torch.equal(lin.weight[kept], w_in[kept])
    assert not torch.equal(lin.weight[chosen], w_in[chosen])
    assert lin.weight[chosen].abs().max() <= 1 / lin.in_features**0.5
    assert torch.equal(lin.bias[chosen], torch.zeros(3))
    assert torch.equal(lin.bias[kept], before["layers.0.linear.bias"][kept])
    assert torch.equal(nxt.weight[:, chosen], torch.zeros(8, 3))
    assert torch.equal(nxt.weight[:, kept], w_out[:, kept])
    # the next bias keeps the mean contribution of the removed units: + W_out[:, i] f^_i
    corr = torch.tensor([0.0, 2.0, 5.0]) / (1 - 0.9 ** torch.tensor([20.0, 20.0, 20.0]))
    want = before["layers.1.linear.bias"] + w_out[:, chosen] @ corr
    assert torch.allclose(nxt.bias, want, atol=1e-5)
    assert cbp.age[0][chosen].tolist() == [0, 0, 0] and cbp.util[0][chosen].tolist() == [0] * 3
    assert torch.equal(opt.state[lin.weight]["exp_avg"][chosen], torch.zeros(3, 10))
    assert torch.equal(opt.state[lin.weight]["exp_avg"][kept], m_in[kept])
    assert torch.equal(opt.state[nxt.weight]["exp_avg"][:, chosen], torch.zeros(8, 3))
    assert torch.equal(opt.state[nxt.weight]["exp_avg"][:, kept], m_out[:, kept])
    assert cbp.replaced == 3
    # layer 1 (into the output layer) was never touched
    assert torch.equal(model.out.weight, before["out.weight"])


def test_continual_backprop_utility_update_from_the_training_batch():
    """u <- eta u + (1 - eta) mean_b |h_i| mean_k |W_out[k, i]|, from a training forward only."""
    model = _mlp()
    cbp = ContinualBackprop(model, rate=0.0, maturity=100, decay=0.9)
    cbp.attach()
    x = torch.randint(0, 5, (16, 2))
    model.eval()
    model(x)  # evaluation: not read
    assert cbp.acts[0] is None
    model.train()
    with torch.no_grad():
        h0 = model.layers[0](F.one_hot(x, 5).flatten(1).float())
    model(x)
    cbp.step(None)
    cbp.detach()
    w_out = model.layers[1].linear.weight.abs().mean(0)
    assert torch.allclose(cbp.util[0], 0.1 * h0.abs().mean(0) * w_out, atol=1e-6)
    assert cbp.age[0].tolist() == [1] * 8 and cbp.replaced == 0


# -- task sequences in a run ---------------------------------------------------------------------

SEQ = {
    "name": "seq",
    "seed": 0,
    "task": {
        "name": "sequence",
        "base": {"name": "prototypes", "n_classes": 3, "length": 4, "vocab": 5, "noise": 0.2,
                 "n_per_class": 10, "n_test_per_class": 10},
        "n_tasks": 3,
        "permute": True,
        "steps_per_task": 5,
    },
    "model": {"kind": "mlp", "width": 16, "depth": 2},
    "train": {"lr": 0.01, "steps": 15, "eval_every": 5},
    "probes": [],
}  # fmt: skip


class _Trained(Callback):
    """Which task's training split each step trained on (full batch: the whole split)."""

    def __init__(self) -> None:
        self.tasks: dict[int, int] = {}

    def on_step_end(self, trainer, step, loss):
        x = trainer.last_batch["x"]
        hits = [k for k, s in enumerate(trainer.task.train_splits) if torch.equal(s["x"], x)]
        self.tasks[step] = hits[0]


def _cfg(**train):
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SEQ.items()}
    cfg["train"] = {**cfg["train"], **train}
    return cfg


def test_sequence_switches_tasks_at_the_right_steps(tmp_path):
    seen = _Trained()
    result = execute(_cfg(), Store(tmp_path), sinks=[seen])
    # step s (1-based: after s updates) trained on the batch of step s - 1: task (s - 1) // 5
    assert seen.tasks == {s: (s - 1) // 5 for s in range(1, 16)}
    table = Store(tmp_path).metric_table(result.run_id)
    assert list(table.index) == [0, 5, 10, 15]
    for k in range(3):
        assert table[f"task{k}/test/acc"].notna().all()
    s = result.summary
    for k in range(3):
        assert s[f"task{k}_final_acc"] == table[f"task{k}/test/acc"].iloc[-1]
        assert s[f"task{k}_best_acc"] == table[f"task{k}/test/acc"].max()
        assert s[f"task{k}_end_acc"] == table[f"task{k}/test/acc"].loc[5 * (k + 1)]
    assert s["avg_acc"] == pytest.approx(sum(s[f"task{k}_final_acc"] for k in range(3)) / 3)


def test_sequence_with_ewc_consolidates_at_each_switch(tmp_path):
    result = execute(_cfg(ewc={"lambda": 10.0, "samples": 8}), Store(tmp_path))
    table = Store(tmp_path).metric_table(result.run_id)
    pen = table["train_step/ewc_penalty"]
    assert pen.loc[5] == 0.0 and pen.loc[10] > 0 and pen.loc[15] > 0  # from the first switch


def test_summary_of_a_known_table():
    params = SimpleNamespace(steps_per_task=2, window=2)
    task = SimpleNamespace(name="sequence", n_tasks=3, params=params)
    table = pd.DataFrame(
        {
            "task0/test/acc": [0.1, 0.6, 0.9, 0.5, 0.4],
            "task1/test/acc": [0.1, 0.2, 0.3, 0.8, 0.7],
            "task2/test/acc": [0.1, 0.1, 0.2, 0.3, 0.6],
        },
        index=[0, 1, 2, 4, 6],
    )
    s = summary(SimpleNamespace(task=task, step=6), table)
    assert [s[f"task{k}_end_acc"] for k in range(3)] == [0.9, 0.8, 0.6]
    assert [s[f"task{k}_final_acc"] for k in range(3)] == [0.4, 0.7, 0.6]
    assert s["forgetting"] == pytest.approx(((0.9 - 0.4) + (0.8 - 0.7)) / 2)
    assert s["old_task_acc"] == pytest.approx(0.55)
    assert s["avg_acc"] == pytest.approx(1.7 / 3)
    assert s["new_task_acc_first"] == pytest.approx(0.85)
    assert s["new_task_acc_last"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"task": {"name": "modular", "p": 7}, "train": {"ewc": {"lambda": 1.0}}}, "train.ewc"),
        ({"train": {"steps": 15, "eval_every": 4}}, "train.eval_every"),
        (
            {"task": {"name": "sequence", "tasks": [{"name": "modular", "p": 7},
                                                    {"name": "modular", "p": 5}]}},
            "task.tasks",
        ),
        ({"model": {"kind": "mlp", "width": 8, "depth": 2, "batchnorm": True},
          "train": {"steps": 15, "eval_every": 5,
                    "plasticity": {"kind": "continual_backprop"}}}, "train.plasticity"),
    ],
)  # fmt: skip
def test_bad_options_name_the_field(changes, field):
    cfg = {**_cfg(), **changes}
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        build(validate_config(cfg))


def test_sequence_runs_never_join_an_ensemble():
    assert ensemble_key(validate_config(_cfg())) is None
    plain = {**_cfg(), "task": {"name": "modular", "p": 7}}
    assert ensemble_key(validate_config(plain)) is not None
    plain["train"] = {**plain["train"], "plasticity": {"kind": "shrink_perturb", "noise": 0.1}}
    assert ensemble_key(validate_config(plain)) is None


class _StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, step, loss):
        if step == self.step:
            trainer.should_stop = True


@pytest.mark.parametrize("stop", [6, 10])  # in the middle of a task; at a switch
def test_a_stopped_continual_run_resumes_to_the_straight_run(tmp_path, stop):
    """Sequence + EWC + continual backprop, minibatches: stopped, then resumed from its
    checkpoint, it ends with the weights and metrics of a run never stopped."""
    from learnscope import checkpoint

    plasticity = {"kind": "continual_backprop", "replacement_rate": 0.2, "maturity": 2}
    cfg = _cfg(batch_size=8, checkpoint_every=2, ewc={"lambda": 10.0, "samples": 8})
    cfg["train"]["plasticity"] = plasticity
    straight_store, store = Store(tmp_path / "a"), Store(tmp_path / "b")
    straight = execute(cfg, straight_store)
    first = execute(cfg, store, sinks=[_StopAt(stop)])
    assert first.status == "stopped"
    again = execute(cfg, store, resume=first.run_id)
    assert again.status == "finished"
    ref, got = straight_store.metric_table(straight.run_id), store.metric_table(first.run_id)
    assert list(got.index) == list(ref.index)
    assert sorted(got.columns) == sorted(ref.columns)
    for name in ref.columns:
        a, b = got[name].dropna(), ref[name].dropna()
        assert list(a.index) == list(b.index), name
        assert list(a) == pytest.approx(list(b), rel=1e-6, abs=1e-9), name
    a = checkpoint.latest(straight.dir / "checkpoints")[1]["model"]
    b = checkpoint.latest(again.dir / "checkpoints")[1]["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert again.summary["forgetting"] == straight.summary["forgetting"]


def test_learnscope_run_prints_the_sequence_summary(tmp_path):
    """What a user sees after `learnscope run` of a task sequence: the average accuracy and
    the forgetting, with the values stored in the run's summary."""
    import yaml
    from typer.testing import CliRunner

    from learnscope.cli import app

    path = tmp_path / "seq.yaml"
    path.write_text(yaml.safe_dump(_cfg()))
    res = CliRunner().invoke(app, ["run", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert res.exit_code == 0, res.output
    from learnscope.cli.app import cell

    store = Store(tmp_path / "runs")
    summary = store.run(store.runs()["id"].iloc[0])["summary"]
    rows = {}
    for line in res.output.splitlines():
        parts = [p.strip() for p in line.split("│")]
        if len(parts) == 4:
            rows[parts[1]] = parts[2]
    for key in ("avg_acc", "old_task_acc", "forgetting"):
        assert rows.get(key) == str(cell(summary[key])), res.output
