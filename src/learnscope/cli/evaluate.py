"""``learnscope eval``: accuracy on freshly generated task instances, per difficulty level,
with a Wilson 95 % interval, for a learnscope run or a Hugging Face causal LM; the result is
stored as a run (``kind: eval``) that ``learnscope report`` plots against difficulty."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, cell, console, fail, plain, table
from learnscope.errors import UserError
from learnscope.store import Store


def _is_run(store: Store, ref: str) -> str | None:
    """The run id ``ref`` names in ``store``, or None (then MODEL is a Hugging Face model)."""
    if (Path(ref) / "config.json").is_file() or not store.path.exists():
        return None
    try:
        return store.resolve(ref)
    except UserError:
        return None


def evaluate(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="a run (id, prefix, 'last') or HF model")
    ],
    task: Annotated[str | None, typer.Option(help="sequence task (a run: its own)")] = None,
    params: Annotated[
        list[str] | None, typer.Option("--params", help="task parameter key=value (repeat)")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="instances per difficulty level")] = 100,
    seed: Annotated[int | None, typer.Option(help="seed of the instances")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="seed from today's date (UTC)")] = False,
    level: Annotated[
        str | None, typer.Option(help="levels as PARAM[,PARAM]=V1,V2,... (e.g. n_digits=1,2,3)")
    ] = None,
    shots: Annotated[int, typer.Option(help="HF model: examples in the few-shot prompt")] = 3,
    step: Annotated[int | None, typer.Option(help="run: checkpoint step (default: latest)")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Score MODEL on N fresh instances of a task per difficulty level (exact answers)."""
    from learnscope.cli.hf import parse_params
    from learnscope.studies.evaluation import evaluate_levels, fresh_seed, record

    if seed is not None and fresh:
        fail("--seed, --fresh: give one of them")
    if not 1 <= n <= 100_000:
        fail(f"--n: must be in 1..100000 (got {n})")
    if not 0 <= shots <= 64:
        fail(f"--shots: must be in 0..64 (got {shots})")
    if seed is not None and not 0 <= seed < 2**63:
        fail(f"--seed: must be in 0..2^63-1 (got {seed})")
    seed = fresh_seed() if fresh else (0 if seed is None else seed)
    given = parse_params(params)
    try:
        store = Store(runs_dir)
        run_id = _is_run(store, model)
        if run_id is not None:
            name, task_params, score, described = _run_scorer(store, run_id, task, given, step)
        else:
            if task is None:
                fail("--task: give the task to evaluate a Hugging Face model on")
            name, task_params, score, described = task, given, _hf_scorer(model, shots, seed), model
        axis, results = evaluate_levels(name, task_params, level, n, seed, score)
        config = {
            "name": f"eval-{name}",
            "model": {"kind": "run" if run_id else "hf", "ref": run_id or model},
            "task": {"name": name, **task_params},
            "n": n,
            "seed": seed,
            "level": level,
            "shots": shots if run_id is None else None,
        }
        eval_id = record(store, f"eval-{name}", config, axis, results)
    except UserError as err:
        fail(str(err))
    how = "today's date (UTC), --fresh" if fresh else "--seed"
    console.print(
        plain(
            f"{described}: {name}, {n} fresh instances per level, seed {seed} ({how}); ",
            f"repeat with --seed {seed}",
        ),
        soft_wrap=True,
    )
    out = table(axis, "n", "correct", "acc", "95% CI (Wilson)")
    for r in results:
        if r.skipped:
            out.add_row(cell(r.value), cell(0), Text("-"), Text("-"), Text(f"skipped: {r.skipped}"))
            continue
        lo, hi = r.interval
        out.add_row(
            cell(r.value), cell(r.n), cell(r.correct), cell(r.acc), Text(f"[{lo:.3f}, {hi:.3f}]")
        )
    console.print(out)
    console.print(
        Text("run ") + Text(eval_id) + Text(f"  (learnscope report {eval_id})"), soft_wrap=True
    )


def _run_scorer(store: Store, run_id: str, task: str | None, given: dict, step: int | None):
    from learnscope.runner import restore
    from learnscope.studies.evaluation import score_gpt

    rec = store.run(run_id)
    cfg = rec["config"]
    if cfg.get("kind") == "eval":
        raise UserError(f"MODEL: run {run_id} is an evaluation, not a trained model")
    own = dict(cfg.get("task", {}))
    name = own.pop("name", None)
    if task is not None and task != name:
        raise UserError(f"--task: run {run_id} was trained on {name!r}, not {task!r}")
    if cfg.get("model", {}).get("kind") != "gpt":
        raise UserError("MODEL: eval decodes sequence tasks with a GPT run (model.kind gpt)")
    trainer, at = restore(cfg, rec["dir"], step)
    vocab = getattr(trainer.task, "vocab", None)

    def score(t, examples):
        if t.vocab != vocab:
            raise ValueError("the task's vocabulary differs from the run's")
        return score_gpt(trainer.model, _fits(t, trainer.task.block_size), examples)

    return name, {**own, **given}, score, f"{rec['name']} {run_id} step {at}"


def _fits(task, block_size: int):
    """``task`` with rows padded to the model's ``block_size`` (a ValueError if longer)."""
    task.block_size = block_size
    return task


def _hf_scorer(model: str, shots: int, seed: int):
    import numpy as np

    from learnscope.hf.hooks import load
    from learnscope.studies.evaluation import score_hf

    net, tokenizer = load(model)

    def score(task, examples):
        pool = task.draw(np.random.default_rng([seed, 1]), shots, "train") if shots else []
        right, _ = score_hf(net, tokenizer, examples, pool)
        return right

    return score
