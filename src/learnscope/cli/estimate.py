"""``learnscope estimate-accuracy``: estimate a run's accuracy on a split without its labels,
by entropy minimisation (Press et al. 2024; :mod:`learnscope.studies.entropy`)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.text import Text

from learnscope.cli.common import (
    RunsDir,
    console,
    fail,
    fitted_table,
    fmt,
    open_run,
    print_left_out,
)
from learnscope.errors import UserError


def estimate_accuracy(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="run id, unique prefix or 'last'")],
    split: Annotated[
        list[str], typer.Option("--split", help="split to estimate (repeat for several)")
    ],
    noise: Annotated[
        list[float] | None,
        typer.Option(help="Gaussian noise std on the token embeddings (repeat: one shift each)"),
    ] = None,
    steps: Annotated[int, typer.Option(help="entropy-minimisation steps k")] = 50,
    lr: Annotated[float, typer.Option(help="SGD learning rate (momentum 0.9)")] = 0.01,
    params: Annotated[
        str, typer.Option(help="norm: LayerNorm gains and biases (Tent); all: every weight")
    ] = "norm",
    rows: Annotated[int, typer.Option(help="inputs of each split used")] = 200,
    record_every: Annotated[int, typer.Option(help="EM steps between records")] = 10,
    trace: Annotated[bool, typer.Option(help="print accuracy and embeddings along EM")] = False,
    step: Annotated[int | None, typer.Option(help="checkpoint step (default: latest)")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Adapt a copy of the model by entropy minimisation for k steps on the unlabelled inputs
    of each split (and noise level), and estimate its accuracy from how its predictions move
    (the paper's weighted flips). Labels are read only to print the true accuracy and the
    mean absolute error of each estimate beside the naive one (mean confidence)."""
    from learnscope.studies.entropy import estimate_shifts, mae

    for name, value, low in (("--steps", steps, 1), ("--rows", rows, 2), ("--record-every",
                             record_every, 1)):  # fmt: skip
        if value < low:
            fail(f"{name}: must be >= {low} (got {value})")
    if not 0 < lr <= 10:
        fail(f"--lr: must be in (0, 10] (got {lr})")
    if params not in ("norm", "all"):
        fail(f"--params: {params!r}; allowed: norm, all")
    if any(not 0 <= s <= 100 for s in noise or []):
        fail(f"--noise: each must be in [0, 100] (got {noise})")
    mode: Literal["norm", "all"] = params  # type: ignore[assignment]
    try:
        run = open_run(runs_dir, run_ref, step)
        trainer, rec, run_id, at = run.trainer, run.record, run.id, run.step
        for name in split:
            trainer.task.split(name)  # an unknown split: the allowed ones named
        shifts = [(name, s) for name in split for s in (noise or [0.0])]
        out, traces = estimate_shifts(
            trainer.model, trainer.task, shifts, steps=steps, lr=lr, params=mode, rows=rows,
            record_every=record_every, seed=rec["config"].get("seed", 0),
        )  # fmt: skip
    except UserError as err:
        fail(str(err))
    console.print(
        Text(f"{rec['name']}  {run_id}  step {at}: {steps} EM steps, lr {lr}, params {params}"),
        soft_wrap=True,
    )
    headers = ["split", "noise", "true acc", "naive", "wf", "paper f", "loo fit",
               "best EM acc (step)", f"acc at {steps}", "dist to train 0 -> k"]  # fmt: skip
    cells = [
        [r["split"], fmt(r["noise"]), fmt(r["acc"]), fmt(r["naive"]), fmt(r["wf"]),
         fmt(r["paper"]), fmt(r["loo"]), f"{fmt(r['best_acc'])} ({r['best_step']})",
         fmt(r["final_acc"]), f"{fmt(r['dist0'])} -> {fmt(r['dist_end'])}"]
        for r in out
    ]  # fmt: skip
    shown, left = fitted_table(headers, cells, keep=3, width=console.width, wrap=0)
    console.print(shown)
    print_left_out(left)
    for key, what in (("naive", "naive (mean confidence)"), ("paper", "paper's f (ImageNet fit)"),
                      ("loo", "quadratic fit, leave-one-shift-out")):  # fmt: skip
        value = mae(out, key)
        console.print(Text(f"MAE {what}: {fmt(value)}"))
    if trace:
        for (name, s), tr in zip(shifts, traces):
            console.print(Text(f"{name} noise {s}: step acc entropy dist_to_train drift wf"))
            for i, st in enumerate(tr.steps):
                console.print(
                    Text(f"  {st} {tr.acc[i]:.3f} {tr.entropy[i]:.3f} "
                         f"{tr.dist_to_train[i]:.3f} {tr.drift[i]:.3f} {tr.wf[i]:.3f}")
                )  # fmt: skip
