"""``learnscope memory-scaling``: the error of an outer-product associative memory against its
dimension ``d`` and its number of samples ``T`` on Zipf inputs, the fitted exponents beside the
laws of Cabannes, Dohmatob & Bietti 2024 (``learnscope.studies.memory_scaling``)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.text import Text

from learnscope.cli.common import RunsDir, cell, console, plain, table, user_errors
from learnscope.errors import UserError
from learnscope.store import Store


def _counts(text: str, option: str, least: int = 2) -> list[int]:
    """``"64,128,256"`` -> ``[64, 128, 256]``; a UserError names the option."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option}: expected comma-separated integers (got {text!r})") from None
    if len(values) < least or min(values, default=1) < 1:
        raise UserError(f"{option}: expected {least} or more integers >= 1 (got {text!r})")
    return values


def memory_scaling(
    alpha: Annotated[
        float, typer.Option(help="Zipf exponent of the inputs, p(x) ~ x^-alpha")
    ] = 2.0,
    n_tokens: Annotated[int, typer.Option(help="input tokens N")] = 20000,
    n_outputs: Annotated[int, typer.Option(help="output tokens M")] = 100,
    dims: Annotated[
        str, typer.Option(help="dimensions d swept (infinite data)")
    ] = "64,128,256,512",
    samples: Annotated[
        str, typer.Option(help="sample counts T swept (every seen token stored)")
    ] = "100,1000,10000,100000",
    d_samples: Annotated[int, typer.Option(help="the dimension of the T sweep")] = 512,
    top_factor: Annotated[
        float, typer.Option(help="the d sweep stores the k = top_factor x d most probable tokens")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="draws the map f, the samples and the embeddings")] = 0,
    sgd_dims: Annotated[
        str, typer.Option(help="also train memories of these d by SGD (runs of the store)")
    ] = "",
    runs_dir: RunsDir = None,
) -> None:
    """Sweep d and T of an associative memory W = sum_x q(x) e_x u_f(x)^T on Zipf inputs and
    print the error, the fitted exponents and the paper's laws."""
    from learnscope.studies.memory_scaling import measure

    with user_errors():
        options = {
            "alpha": alpha,
            "n_tokens": n_tokens,
            "n_outputs": n_outputs,
            "dims": _counts(dims, "--dims"),
            "samples": _counts(samples, "--samples"),
            "d_samples": d_samples,
            "top_factor": top_factor,
        }
        if seed < 0:
            raise UserError(f"--seed: expected an integer >= 0 (got {seed})")
        if sgd_dims.strip():
            options["sgd_dims"] = _counts(sgd_dims, "--sgd-dims", least=1)
        start = time.perf_counter()
        out = measure(options, seed, Store(runs_dir) if options.get("sgd_dims") else None)
        wall = time.perf_counter() - start
    by_d = table("d", "E (top k = d)", "E (q = frequency)", title="error against dimension")
    for d in sorted(options["dims"]):
        by_d.add_row(cell(d), cell(out[f"error_d{d}"]), cell(out[f"error_freq_d{d}"]))
    console.print(by_d)
    if options.get("sgd_dims"):
        by_sgd = table("d", "E (trained by SGD)", title="memories trained through the runner")
        for d in options["sgd_dims"]:
            by_sgd.add_row(cell(d), cell(out[f"error_sgd_d{d}"]))
        console.print(by_sgd)
    by_t = table(
        "T", "E (q = 1[seen])", "unseen mass", title=f"error against samples (d={d_samples})"
    )
    for t in sorted(options["samples"]):
        by_t.add_row(cell(t), cell(out[f"error_T{t}"]), cell(out[f"unseen_T{t}"]))
    console.print(by_t)
    laws = table("law", "fitted exponent", "paper", title=f"exponents, alpha = {alpha:g}")
    laws.add_row(
        Text("E ~ d^-(alpha-1), thresholded"),
        cell(out["d_exponent"]),
        cell(out["d_exponent_theory"]),
    )
    laws.add_row(Text("E ~ T^-(1-1/alpha), seen tokens"), cell(out["T_exponent"]),
                 cell(out["T_exponent_theory"]))  # fmt: skip
    laws.add_row(Text("E against d, q = frequency"), cell(out["d_exponent_frequency"]),
                 Text("not claimed"))  # fmt: skip
    console.print(laws)
    what = "closed-form memories" + (" and SGD runs" if options.get("sgd_dims") else "")
    console.print(plain(f"{wall:.1f} s ({what}, seed {seed})"))
