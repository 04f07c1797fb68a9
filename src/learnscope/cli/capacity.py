"""``learnscope capacity``: effective model complexity (Shwartz-Ziv et al. 2024), the largest
number of training samples a model and its training procedure fit to 100% training accuracy,
found by doubling then bisection over the sample count (``learnscope.studies.capacity``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, cell, check_recipe, console, plain, table, user_errors
from learnscope.errors import UserError
from learnscope.store import Store


def _values(over: str) -> tuple[str, list]:
    """``model.width=8,16,32`` -> ``("model.width", [8, 16, 32])`` (values read as YAML)."""
    from learnscope.config import load_yaml

    key, sep, raw = over.partition("=")
    items = [v for v in raw.split(",") if v.strip()]
    if not sep or not key.strip() or not items:
        raise UserError(f"--over: expected key.path=v1,v2,... (got {over!r})")
    return key.strip(), [load_yaml(v, f"--over {key}") for v in items]


def capacity(
    recipe: Annotated[str, typer.Argument(help="a built-in recipe name or a YAML file")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key.path=value")
    ] = None,
    labels: Annotated[str, typer.Option(help="correct or random (training labels)")] = "correct",
    start: Annotated[int, typer.Option(help="first sample count tried (then doubled)")] = 16,
    max_n: Annotated[
        int | None,
        typer.Option("--max", help="most samples tried (default: the task's pool)"),
    ] = None,
    rtol: Annotated[
        float, typer.Option(help="bisection stops when the bracket is <= rtol x EMC")
    ] = 0.05,
    seeds: Annotated[int, typer.Option(help="training seeds that must all fit a count")] = 1,
    over: Annotated[
        str | None,
        typer.Option(help="one EMC per value: key.path=v1,v2,... (e.g. model.width=8,16,32)"),
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Effective model complexity: the most training samples RECIPE's model and training
    procedure fit to 100% training accuracy (each trial a stored run)."""
    from learnscope.config import apply_overrides, load_recipe_dict, validate_config
    from learnscope.studies.capacity import find_emc, n_parameters

    def show(trial) -> None:
        accs = ", ".join(f"{a:.4f}" for a in trial.train_acc)
        mark = Text("fits", style="green") if trial.fitted else Text("does not fit", style="red")
        console.print(
            plain(f"  n={trial.n}: ") + mark + plain(f" (train acc {accs}; {trial.runs[-1]})"),
            soft_wrap=True,
        )

    with user_errors():
        check_recipe(recipe)
        store = Store(runs_dir)
        base = apply_overrides(load_recipe_dict(recipe), list(set_ or []))
        key, values = _values(over) if over else (None, [None])
        rows = []
        for value in values:
            data = apply_overrides(base, [f"{key}={value}"]) if key else base
            cfg = validate_config(data)
            what = f"{cfg.name}" + (f" {key}={value}" if key else "")
            console.print(Text(f"capacity of {what}, {labels} labels:"), soft_wrap=True)
            found = find_emc(cfg, store, labels, start, max_n, rtol, seeds, on_trial=show)
            params = n_parameters(cfg)
            rows.append((value, params, found))
            bound = (
                "reached the most samples tried"
                if found.capped
                else (f"n={found.not_fitted} does not fit")
            )
            console.print(
                Text(f"EMC = {found.emc} samples ({bound}; {params} parameters)", style="bold"),
                soft_wrap=True,
            )
    if key:
        out = table(key, "parameters", "EMC", "not fitted", "trials", title=f"EMC, {labels} labels")
        for value, params, found in rows:
            out.add_row(
                cell(value), cell(params), cell(found.emc), cell(found.not_fitted),
                cell(len(found.trials)),
            )  # fmt: skip
        console.print(out)
