"""``learnscope data-diet RECIPE --score el2n|grand|forgetting --keep 0.5,0.7``: score the
training examples early in training, prune the easiest, retrain on the rest, against random
pruning at the same size (Paul et al. 2021; :mod:`learnscope.studies.data_diet`)."""

from __future__ import annotations

import statistics
from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import (
    RunsDir,
    cell,
    check_recipe,
    console,
    fail,
    set_threads,
    table,
    user_errors,
)
from learnscope.store import Store


def fractions(text: str, option: str, zero_ok: bool) -> list[float]:
    """``"0.5,0.7"`` as ``[0.5, 0.7]``; anything else ends the command naming ``option``."""
    allowed = "0 <= f < 1" if zero_ok else "0 < f <= 1"
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    ok = values and all((0 <= v < 1) if zero_ok else (0 < v <= 1) for v in values)
    if not ok:
        fail(f"{option}: {text!r}; allowed: comma-separated fractions with {allowed}")
    return values


def _mean(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def data_diet(
    recipe: Annotated[str, typer.Argument(help="a built-in recipe name or a YAML file")],
    score: Annotated[str, typer.Option(help="el2n, grand or forgetting")] = "el2n",
    keep: Annotated[str, typer.Option(help="fractions of the training set kept")] = "0.5,0.7",
    offset: Annotated[
        str,
        typer.Option(
            help="fractions of the hardest skipped before keeping (0: none, the paper's rule; "
            "0.2: the sliding window that leaves out the noisiest labels)"
        ),
    ] = "0,0.2",
    seeds: Annotated[int, typer.Option(help="seeds (model and data)", min=1, max=100)] = 3,
    seed_start: Annotated[int, typer.Option(help="the first seed", min=0)] = 0,
    score_steps: Annotated[
        int | None,
        typer.Option(help="steps of the scoring runs (default: a tenth; forgetting: all)", min=1),
    ] = None,
    score_seeds: Annotated[
        int, typer.Option(help="scoring runs averaged per seed", min=1, max=20)
    ] = 3,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key.path=value")
    ] = None,
    runs_dir: RunsDir = None,
    threads: Annotated[int | None, typer.Option(help="torch threads", min=1, max=1024)] = None,
) -> None:
    """Score RECIPE's training examples early in training (averaged over --score-seeds runs),
    keep the hardest --keep fractions (pruning the easiest), retrain from scratch, and print
    test accuracy against random pruning at the same size, over --seeds seeds; with label
    noise, how many of the highest scores are flipped labels."""
    from learnscope.config import apply_overrides
    from learnscope.dotted import flatten
    from learnscope.studies.data_diet import SCORES, measure, pct

    if score not in SCORES:
        fail(f"--score: {score!r}; allowed: {', '.join(SCORES)}")
    keeps = fractions(keep, "--keep", zero_ok=False)
    offsets = fractions(offset, "--offset", zero_ok=True)
    set_threads(threads)
    rows: list[dict[str, float]] = []
    with user_errors():
        check_recipe(recipe)
        overrides = flatten(apply_overrides({}, list(set_ or [])))
        options = {
            "recipe": recipe,
            "set": overrides,
            "score": score,
            "keep": keeps,
            "offset": offsets,
            "score_steps": score_steps,
            "score_seeds": score_seeds,
        }
        store = Store(runs_dir)
        for seed in range(seed_start, seed_start + seeds):
            out = measure(options, seed, store)
            rows.append(out)
            shown = ", ".join(
                f"{k} {v:.3f}"
                for k, v in out.items()
                if k.startswith(("full_acc", "score_acc", "random_acc", "top_flipped"))
            )
            console.print(Text(f"seed {seed} ({out['wall_s']:.0f} s): {shown}"), soft_wrap=True)

    done = list(range(seed_start, seed_start + len(rows)))
    title = f"data-diet {recipe}: {score} (keep the hardest) vs random, seeds {done}"
    out_table = table("keep", "offset", score, "random", f"{score} - random", "kept noise",
                      title=title)  # fmt: skip
    for k in keeps:
        for o in offsets:
            tag = f"k{pct(k)}" + (f"_o{pct(o)}" if o else "")
            a = [r[f"score_acc_{tag}"] for r in rows]
            b = [r[f"random_acc_k{pct(k)}"] for r in rows]
            d = [r[f"score_minus_random_{tag}"] for r in rows]
            noise = [r[f"kept_noise_{tag}"] for r in rows]
            out_table.add_row(
                cell(k), cell(o), Text(_mean(a)), Text(_mean(b)), Text(_mean(d)), Text(_mean(noise))
            )
    console.print(out_table)
    console.print(Text(f"full training set: test acc {_mean([r['full_acc'] for r in rows])}"))
    if "top_flipped_precision" in rows[0]:
        p = [r["top_flipped_precision"] for r in rows]
        base = rows[0]["noise_fraction"]
        console.print(
            Text(
                f"flipped labels among the top 20% {score} scores: precision {_mean(p)} "
                f"(base rate {base:.2f}), recall {_mean([r['top_flipped_recall'] for r in rows])}"
            ),
            soft_wrap=True,
        )
