"""``learnscope probe-hf``: learnscope's probes on a Hugging Face causal LM, per layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from learnscope.cli.common import cell, console, fail, plain, table
from learnscope.errors import UserError


def parse_params(items: list[str] | None, where: str = "--params") -> dict[str, Any]:
    """``key=value`` pairs, values read as YAML scalars (``n_digits=3``, ``reverse=true``)."""
    from learnscope.config import load_yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"{where}: {item!r}; expected key=value")
        try:
            out[key.strip()] = load_yaml(value, where) if value.strip() else value
        except UserError as err:
            fail(str(err))
    return out


#: ``probe-hf --text`` reads at most this much of a file (rows x context tokens is far less)
MAX_TEXT_BYTES = 16 << 20


def task_texts(name: str, params: dict[str, Any], rows: int, seed: int) -> list[str]:
    """``rows`` fresh instances of task ``name``, each as the text ``question answer``
    (:func:`learnscope.hf.prompts.line`)."""
    import numpy as np

    from learnscope.hf.prompts import line
    from learnscope.studies.evaluation import sequence_task

    task = sequence_task(name, params)
    examples = task.draw(np.random.default_rng(seed), rows, "test")
    return [line(e.question, e.answer) for e in examples]


def probe_hf(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="directory or hub name")],
    text: Annotated[Path | None, typer.Option(help="text file to run the model on")] = None,
    task: Annotated[str | None, typer.Option(help="a sequence task: its instances as text")] = None,
    params: Annotated[
        list[str] | None, typer.Option("--params", help="task parameter key=value (repeat)")
    ] = None,
    probe: Annotated[
        list[str] | None, typer.Option("--probe", help="probes (repeat; default: all)")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="angular distance between layers l and l+n")] = 1,
    rows: Annotated[int, typer.Option(min=1, max=4096, help="text windows or task instances")] = 32,
    context: Annotated[
        int, typer.Option(min=2, max=1 << 20, help="--text: tokens per window")
    ] = 128,
    seed: Annotated[int, typer.Option(help="--task: seed of the instances")] = 0,
    report: Annotated[Path | None, typer.Option(help="write an HTML report here")] = None,
) -> None:
    """Per layer: effective rank and matrix entropy of the hidden states, attention entropy
    per head, angular distance between layers l and l + n at the last token."""
    if (text is None) == (task is None):
        fail("probe-hf: give --text FILE or --task NAME (one of them)")
    if rows < 1 or context < 2 or n < 1:
        fail("--rows and --n must be >= 1, --context >= 2")
    from learnscope.hf.hooks import chunks, load, positions, tokenize
    from learnscope.hf.probe import HF_PROBES
    from learnscope.hf.probe import probe as run_probe

    try:
        unknown = [p for p in probe or [] if p not in HF_PROBES]
        if unknown:
            raise UserError(
                f"--probe: unknown probe {unknown[0]!r}; allowed: {', '.join(HF_PROBES)}"
            )
        if task is not None:
            texts = task_texts(task, parse_params(params), rows, seed)
        else:
            from learnscope.config import read_text

            body = read_text(text, "--text", limit=MAX_TEXT_BYTES)
        net, tokenizer = load(model)
        most = positions(net)
        if text is not None and most is not None and context > most:
            raise UserError(
                f"--context: {context} tokens, but the model takes at most {most} positions; "
                f"give --context {most} or less"
            )
        if task is not None:
            batch = tokenize(tokenizer, texts, max_len=min(256, most or 256))
            where = f"{len(texts)} instances of {task}"
        else:
            batch = chunks(tokenizer, body, context, rows)
            ids = batch["input_ids"]
            where = f"{len(ids)} windows of {ids.shape[1]} tokens of {text}"
        values = run_probe(net, tokenizer, batch, probe, n)
    except UserError as err:
        fail(str(err))
    console.print(plain(f"{model}: {where}"), soft_wrap=True)
    from learnscope.report.layers import by_probe

    for name, series in by_probe(values).items():
        if name == "attention_entropy":
            heads = sorted(series, key=lambda s: int(s.rsplit("/h", 1)[1]))
            layers = sorted({i for s in heads for i in series[s]})
            out = table("layer", *[h.rsplit("/", 1)[1] for h in heads], title=f"{name} (nats)")
            for i in layers:
                out.add_row(cell(i), *(cell(series[h].get(i)) for h in heads))
        else:
            (label, points), *_ = series.items()
            out = table("layer", name, title=f"{name}: {label}")
            for i in sorted(points):
                out.add_row(cell(i), cell(points[i]))
        console.print(out)
    if report is not None:
        from learnscope.report.layers import write_layer_report

        try:
            path = write_layer_report(values, report, f"learnscope probe-hf: {model}", where)
        except UserError as err:
            fail(str(err))
        console.print(Text(f"wrote {path}"), soft_wrap=True)
