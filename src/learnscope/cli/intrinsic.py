"""``learnscope intrinsic-dim``: the intrinsic dimension of a recipe (Li et al. 2018), the
smallest random subspace ``theta_0 + P z`` in which training reaches 90 % of the full model's
accuracy (``learnscope.studies.intrinsic_dim``; each trial a stored run)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, cell, check_recipe, console, plain, table, user_errors
from learnscope.errors import UserError
from learnscope.store import Store


def _dims(raw: str | None) -> list[int] | None:
    """``"1,2,4"`` -> ``[1, 2, 4]``; anything else is a UserError naming ``--dims``."""
    if raw is None:
        return None
    try:
        dims = [int(v) for v in raw.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--dims: a comma-separated list of integers (got {raw!r})") from None
    if not dims or any(d < 1 for d in dims) or sorted(set(dims)) != dims:
        raise UserError(f"--dims: increasing dimensions >= 1, e.g. 1,2,4,8 (got {raw!r})")
    return dims


def intrinsic_dim(
    recipe: Annotated[str, typer.Argument(help="a built-in recipe name or a YAML file")],
    dims: Annotated[
        str | None,
        typer.Option(help="dimensions tried in order, then bisected (default 1,2,4,... up to D)"),
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="fraction of the full model's value to reach")
    ] = 0.9,
    kind: Annotated[str, typer.Option(help="projection: dense or fastfood")] = "dense",
    metric: Annotated[str, typer.Option(help="summary value compared")] = "test_acc",
    rtol: Annotated[
        float, typer.Option(help="bisection stops at a bracket of rtol x d (0: exact)")
    ] = 0.0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key.path=value")
    ] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Intrinsic dimension: train RECIPE in full, then in random subspaces of growing
    dimension d, and print d_int90, the smallest d reaching 90% of the full model's accuracy."""
    from learnscope.studies.intrinsic_dim import load, search, search_sweep

    def show(trial) -> None:
        mark = Text("reached", style="green") if trial.reached else Text("below", style="red")
        console.print(
            plain(f"  d={trial.dim}: {metric} {trial.value:.4f} ")
            + mark
            + plain(f" ({trial.run_id})"),
            soft_wrap=True,
        )

    with user_errors():
        if rtol < 0 or rtol >= 1:
            raise UserError(f"--rtol: must be in [0, 1) (got {rtol})")
        wanted = _dims(dims)
        check_recipe(recipe)
        cfg = load(recipe, list(set_ or []))
        store = Store(runs_dir)
        console.print(
            Text(f"intrinsic dimension of {cfg.name} ({kind} subspaces):"), soft_wrap=True
        )
        if not 0 < threshold <= 1:
            raise UserError(f"--threshold: must be in (0, 1] (got {threshold})")
        if kind not in ("dense", "fastfood"):
            raise UserError(f"--kind: {kind!r}; allowed: dense, fastfood")
        if cfg.train.subspace is not None:
            raise UserError("train.subspace: the recipe must train the full model (remove it)")
        # the search is a sweep of the store: `learnscope report --sweep last` draws its curve
        sweep_id = store.create_sweep(*search_sweep(cfg, wanted, threshold, metric, kind))
        status = "failed"
        try:
            found = search(
                cfg, store, wanted, threshold, metric, kind, rtol, on_trial=show, sweep_id=sweep_id
            )
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            runs = store.runs()
            if status != "finished" and not (runs["sweep_id"] == sweep_id).any():
                store.delete_sweep(sweep_id)  # nothing trained: no sweep to show
            else:
                store.set_sweep_status(sweep_id, status)
    pct = round(100 * threshold)
    console.print(
        f"full model: {metric} {found.full:.4f} ({found.n_params} parameters; {found.full_run}); "
        f"target {found.target:.4f}",
        soft_wrap=True,
    )
    console.print(
        plain(
            f"recorded as sweep {sweep_id}: learnscope report --sweep {sweep_id} draws the curve"
        ),
        soft_wrap=True,
    )
    out = table("d", metric, f">= {pct}%", title="intrinsic-dimension curve")
    for t in sorted(found.trials, key=lambda t: t.dim):
        out.add_row(cell(t.dim), cell(round(t.value, 4)), cell("yes" if t.reached else "no"))
    console.print(out)
    if found.d_int is None:
        console.print(
            Text(f"d_int{pct} not found: no dimension tried reached the target", style="bold"),
            soft_wrap=True,
        )
    else:
        console.print(Text(f"d_int{pct} = {found.d_int}", style="bold"), soft_wrap=True)
