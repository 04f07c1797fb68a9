"""``learnscope transfer``: linear-probe transfer of trained runs to a held-out task, and the
effective rank of their representation (``learnscope.studies.transfer``; Zhu et al. 2023's
evaluation of VCR pre-training)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, cell, console, fail, resolve_run, resolve_sweep, table
from learnscope.errors import UserError
from learnscope.store import Store


def _held_out(items: list[str]) -> dict:
    """``["op=sub"]`` -> ``{"op": "sub"}`` (values read as YAML)."""
    from learnscope.config import load_yaml

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--task: expected param=value (got {item!r})")
        out[key.strip()] = load_yaml(raw, f"--task {key}") if raw.strip() else ""
    return out


def _regularized(config: dict) -> str:
    regs = config.get("train", {}).get("regularizers") or []
    return ", ".join(f"{r['kind']}({r['lambda_var']:g}, {r['lambda_cov']:g})" for r in regs) or "-"


def transfer(
    run_refs: Annotated[
        list[str] | None, typer.Argument(metavar="RUN", help="run ids, prefixes or 'last'")
    ] = None,
    sweep: Annotated[str | None, typer.Option(help="every finished run of this sweep")] = None,
    task: Annotated[
        list[str] | None,
        typer.Option("--task", help="held-out task parameter: param=value (e.g. op=sub)"),
    ] = None,
    site: Annotated[str, typer.Option(help="the representation probed")] = "layers.0.hook_post",
    ridge: Annotated[float, typer.Option(help="ridge penalty of the linear probe")] = 1e-3,
    runs_dir: RunsDir = None,
) -> None:
    """Fit a linear probe on each run's frozen features for a held-out task (--task op=sub)
    and print its test accuracy beside the representation's effective rank."""
    from learnscope.studies.transfer import transfer as measure

    if not task:
        fail("--task: give the held-out task's parameters, e.g. --task op=sub")
    if not 0 <= ridge <= 1e6:
        fail(f"--ridge: must be in [0, 1e6] (got {ridge})")
    try:
        held_out = _held_out(list(task))
        store = Store(runs_dir)
        ids = [resolve_run(store, r) for r in run_refs or []]
        if sweep is not None:
            sweep_id = resolve_sweep(store, sweep)
            runs = store.runs()
            chosen = runs[(runs["sweep_id"] == sweep_id) & (runs["status"] != "failed")]
            ids += [r for r in chosen["id"] if r not in ids]
        if not ids:
            fail("transfer: give runs (RUN...) or --sweep")
        out = table("run", "seed", "regularizers", "effective rank", "probe train", "probe test")
        out.title = Text(f"linear-probe transfer to {json.dumps(held_out)} at {site}")
        for run_id in ids:
            rec = store.run(run_id)
            got = measure(rec["config"], rec["dir"], held_out, site, ridge)
            out.add_row(
                Text(run_id),
                cell(rec["config"].get("seed")),
                Text(_regularized(rec["config"])),
                cell(got.effective_rank),
                cell(got.probe_train_acc),
                cell(got.probe_test_acc),
            )
    except UserError as err:
        fail(str(err))
    console.print(out)
