"""Commands that build or change a network rather than train one: ``learnscope analytic``
(the modular-arithmetic network written down in closed form) and ``learnscope
prune-memorizing`` (remove the neurons that memorise corrupted labels)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from learnscope.cli.common import RunsDir, console, fail, open_run
from learnscope.cli.common import fmt as _fmt
from learnscope.errors import UserError
from learnscope.strict import MAX_SEED

#: ``analytic --width`` at most: the table is evaluated 16 384 rows at a time, each row a
#: hidden layer of this width (16 384 x 10 000 floats: 0.6 GiB)
MAX_WIDTH = 10_000


def _frequencies(freqs: list[int]) -> str:
    """``1..48`` for a full range, else the list."""
    if freqs and freqs == list(range(freqs[0], freqs[-1] + 1)) and len(freqs) > 3:
        return f"{freqs[0]}..{freqs[-1]}"
    return ", ".join(map(str, freqs)) or "none"


def analytic(
    op: Annotated[str, typer.Option(help="add or mul")] = "add",
    p: Annotated[int, typer.Option("--p", help="an odd prime")] = 97,
    terms: Annotated[int, typer.Option(help="operands summed (or multiplied)")] = 2,
    width: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_WIDTH, help="hidden neurons (default: a width that is exact)"),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="seed of the random phases")] = 0,
) -> None:
    """Build the analytic network for (a + b) mod p or a * b mod p (Gromov 2023; Doshi et al.
    2024) without training and print its accuracy on the full table."""
    from learnscope.models.analytic import analytic_mlp, table_accuracy
    from learnscope.probes.spectral import frequency_profile

    if op not in ("add", "mul"):
        fail(f"--op: {op!r}; allowed: add, mul")
    if width is not None and width < 1:
        fail(f"--width: must be >= 1 (got {width})")
    if p > 1000 or terms > 6 or p**terms > 10**7:
        fail(f"--p, --terms: the table has p^terms = {p}^{terms} rows; at most 10^7")
    try:
        net = analytic_mlp(op, p, width, terms, seed)
    except ValueError as err:
        fail(f"--p, --terms: {err}")
    what = {"add": " + ", "mul": " * "}[op].join(f"n{i + 1}" for i in range(terms))
    console.print(Text(f"analytic network for ({what}) mod {p}: width {net.cfg.width}"))
    console.print(f"accuracy: {table_accuracy(net, op, p, terms):.4f}")
    if op == "mul":
        nonzero = table_accuracy(net, op, p, terms, nonzero=True)
        console.print(f"accuracy on nonzero operands: {nonzero:.4f}")
    ipr, freq = frequency_profile(net.layers[0].linear.weight, p, op)
    single = ipr > 0.5
    used = sorted(set(freq[single].tolist()))
    console.print(
        f"single-frequency neurons (IPR > 0.5): {single.float().mean().item():.3f}; "
        f"frequencies used: {_frequencies(used)} ({len(used)} of {(p - 1) // 2})"
    )


def prune_memorizing(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="run id, unique prefix or 'last'")],
    ipr_below: Annotated[
        float, typer.Option(help="remove the hidden neurons whose mean IPR is below this")
    ] = 0.3,
    step: Annotated[int | None, typer.Option(help="checkpoint step (default: latest)")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Remove the memorising (low-IPR) neurons of a modular-arithmetic MLP run (Doshi et al.
    2024) and print the accuracy on each split before and after."""
    from learnscope.studies.memorization import prune_memorizing as prune

    if not 0 < ipr_below <= 1:
        fail(f"--ipr-below: must be in (0, 1] (got {ipr_below})")
    try:
        run = open_run(runs_dir, run_ref, step)
        result = prune(run.trainer, run.record["config"], ipr_below)
    except UserError as err:
        fail(str(err))
    console.print(
        Text(
            f"{run.record['name']}  {run.id}  step {run.step}: pruned {len(result.neurons)} of "
            f"{result.width} neurons with mean IPR < {ipr_below} (median IPR "
            f"{result.median_ipr:.3f})"
        ),
        soft_wrap=True,
    )
    table = Table("metric", "before", "after")
    for key in [k for k in result.before if k.endswith(("/acc", "/true_acc"))]:
        table.add_row(key, _fmt(result.before[key]), _fmt(result.after[key]))
    console.print(table)
