"""``learnscope prune-layers``: remove the block of layers that changes the residual stream
least (Gromov et al. 2024), on a learnscope GPT run (accuracy before and after, optional
healing) or on a Hugging Face causal LM (``--hf``: perplexity on a text before and after, the
pruned model saved with ``save_pretrained``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, cell, console, fail, plain, resolve_run, table
from learnscope.errors import UserError
from learnscope.store import Store


def prune_layers(
    run_ref: Annotated[
        str | None, typer.Argument(metavar="RUN", help="run id, unique prefix or 'last'")
    ] = None,
    n: Annotated[
        list[int] | None, typer.Option("--n", help="layers to remove (repeat: --n 1 --n 2)")
    ] = None,
    heal: Annotated[
        int, typer.Option(help="fine-tuning steps after pruning (0: none), run's settings")
    ] = 0,
    heal_lr: Annotated[
        float | None, typer.Option(help="healing learning rate (default: run's lr / 10)")
    ] = None,
    step: Annotated[int | None, typer.Option(help="checkpoint step (default: latest)")] = None,
    rows: Annotated[int, typer.Option(help="test rows that score the blocks")] = 256,
    plot: Annotated[
        Path | None, typer.Option(help="PNG: test accuracy against the layers removed")
    ] = None,
    hf: Annotated[
        str | None, typer.Option("--hf", help="a Hugging Face causal LM (directory or hub name)")
    ] = None,
    text: Annotated[
        Path | None, typer.Option(help="--hf: text file scoring the blocks and the perplexity")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="--hf: save the pruned model here")] = None,
    context: Annotated[int, typer.Option(help="--hf: tokens per text window")] = 128,
    windows: Annotated[int, typer.Option(help="--hf: text windows used, at most")] = 32,
    runs_dir: RunsDir = None,
) -> None:
    """Remove the most similar block of --n layers (Gromov et al. 2024) and report accuracy
    (a run) or perplexity (--hf) before and after."""
    if not n:
        fail("--n: give the number of layers to remove (e.g. --n 2)")
    if any(k < 1 for k in n):
        fail(f"--n: must be >= 1 (got {min(n)})")
    if (run_ref is None) == (hf is None):
        fail("prune-layers: give a RUN or --hf MODEL (one of them)")
    if hf is not None:
        _prune_hf(hf, n, text, out, context, windows)
        return
    for name, value in (("--heal", heal), ("--rows", rows - 1)):
        if value < 0:
            fail(f"{name}: must be >= {1 if name == '--rows' else 0}")
    if heal_lr is not None and not 0 < heal_lr <= 1e6:
        fail(f"--heal-lr: must be in (0, 1e6] (got {heal_lr})")
    if plot is not None and not plot.parent.is_dir():
        fail(f"--plot: directory {plot.parent} does not exist")
    from learnscope.studies.layer_pruning import curve, prune_layers

    try:
        store = Store(runs_dir)
        run_id = resolve_run(store, run_ref)
        study = prune_layers(store, run_id, sorted(set(n)), heal, rows, heal_lr=heal_lr, step=step)
    except UserError as err:
        fail(str(err))
    _print_pruning(study)
    if plot is not None:
        from learnscope.report.build import png
        from learnscope.report.layers import pruning_curve

        title = f"{study.name}: layer pruning"
        plot.write_bytes(png(pruning_curve(curve(study), "test/acc", study.layers, title)))
        console.print(plain("wrote ", plot), soft_wrap=True)


def _print_pruning(study) -> None:
    """The table of a layer-pruning study: per K and split, accuracy before, pruned, healed
    and for the baseline."""
    heal = study.heal_lr is not None
    console.print(
        Text(
            f"{study.name}  {study.run_id}  step {study.step}: {study.layers} layers; blocks "
            f"scored on {study.rows} test rows at the last prompt token"
        ),
        soft_wrap=True,
    )
    splits = [k for k in study.before if k.endswith("/acc")]
    headers = ["n", "block", "d", "split", "before", "pruned"]
    headers += ["healed", "deep", "deep healed"] if heal else ["deep"]
    out_table = table(*headers, title="exact-match accuracy")
    out_table.columns[3].no_wrap = True
    for r in study.results:
        for key in splits:
            row = [cell(r.n), Text(f"{r.start}..{r.start + r.n - 1}"), Text(f"{r.distance:.3f}")]
            row += [
                Text(key.removesuffix("/acc")),
                cell(study.before[key]),
                cell(r.pruned.get(key)),
            ]
            if heal:
                row.append(cell(r.healed.get(key)))
            row.append(cell(r.baseline.get(key)))
            if heal:
                row.append(cell(r.baseline_healed.get(key)))
            out_table.add_row(*row)
    console.print(out_table)
    steps = study.results[0].heal_steps if study.results else 0
    console.print(
        plain(
            "block: the layers removed, d: their angular distance (input to output); ",
            "deep: the baseline removing layers ",
            ", ".join(f"{r.baseline_start}..{r.baseline_start + r.n - 1}" for r in study.results),
            " (the deepest but the last)",
            f"; healed: {steps} fine-tuning steps at lr {study.heal_lr:.3g}" if heal else "",
        ),
        soft_wrap=True,
    )


def _prune_hf(
    name: str, ns: list[int], text: Path | None, out: Path | None, context: int, windows: int
) -> None:
    if len(ns) != 1:
        fail("--n: give one number of layers with --hf (the pruned model is saved)")
    if text is None or out is None:
        fail("--hf: give --text FILE (the perplexity) and --out DIR (the pruned model)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"--out: {out} exists and is not an empty directory")
    if not out.parent.is_dir():
        fail(f"--out: directory {out.parent} does not exist")
    if context < 2 or windows < 1:
        fail("--context must be >= 2 and --windows >= 1")
    from learnscope.config import read_text
    from learnscope.hf.hooks import chunks, load
    from learnscope.hf.prune import prune_hf

    try:
        body = read_text(text, "--text")
        model, tokenizer = load(name, "--hf")
        batch = chunks(tokenizer, body, context, windows)
        try:
            pruned, r = prune_hf(model, batch, ns[0])
        except ValueError as err:
            fail(str(err))
    except UserError as err:
        fail(str(err))
    pruned.save_pretrained(out)
    tokenizer.save_pretrained(out)
    shown = ", ".join(f"{d:.4f}" for d in r.distances)
    console.print(
        plain(
            f"{name}: {r.layers} layers; removed {r.start}..{r.start + r.n - 1} "
            f"(angular distance {r.distance:.4f}; per start: {shown}) over "
            f"{len(batch['input_ids'])} windows of {batch['input_ids'].shape[1]} tokens"
        ),
        soft_wrap=True,
    )
    result = table("", "layers", "perplexity")
    result.add_row(Text("before"), cell(r.layers), cell(r.ppl_before))
    result.add_row(Text("after"), cell(r.layers - r.n), cell(r.ppl_after))
    console.print(result)
    console.print(plain("saved the pruned model to ", out), soft_wrap=True)
