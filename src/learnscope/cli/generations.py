"""``learnscope generations``: iterated fitting on generated data (model collapse,
Gerstgrasser et al. 2024): each generation trained on answers sampled from the previous one,
the data replaced or accumulated (``learnscope.studies.model_collapse``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, cell, check_recipe, console, fail, table, user_errors
from learnscope.store import Store

COLUMNS = ("train_acc", "train_real_acc", "train_real_loss", "test_acc", "test_loss")


def generations(
    recipe: Annotated[str, typer.Argument(help="a built-in recipe name or a YAML file")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key.path=value")
    ] = None,
    n: Annotated[
        int, typer.Option("--generations", help="generations after the real-data one")
    ] = 5,
    mode: Annotated[str, typer.Option(help="replace, accumulate or both")] = "both",
    sample_seed: Annotated[int, typer.Option(help="seed of the sampled answers")] = 0,
    runs_dir: RunsDir = None,
) -> None:
    """Train RECIPE on real data, then generation after generation on answers sampled from
    the previous model, the data replaced or accumulated; print each generation's error
    against the truth (train_real: the real training prompts; test: held-out ones)."""
    from learnscope.config import load_config
    from learnscope.studies.model_collapse import run_chain

    if mode not in ("replace", "accumulate", "both"):
        fail(f"--mode: {mode!r}; allowed: replace, accumulate, both")
    modes = ["replace", "accumulate"] if mode == "both" else [mode]
    out = table("mode", "generation", *COLUMNS, "run", title="generations")

    def show(m: str):
        def row(i: int, result) -> None:
            s = result.summary
            console.print(
                Text(f"{m} generation {i}: ")
                + Text(", ".join(f"{k} {s[k]:.4g}" for k in COLUMNS if k in s)),
                soft_wrap=True,
            )
            out.add_row(Text(m), cell(i), *(cell(s.get(k)) for k in COLUMNS), Text(result.run_id))

        return row

    with user_errors():
        check_recipe(recipe)
        store = Store(runs_dir)
        cfg = load_config(recipe, list(set_ or []))
        for m in modes:
            run_chain(cfg, store, n, m, sample_seed, on_run=show(m))
    console.print(out)
