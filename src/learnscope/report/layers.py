"""Figures read along the layers of one model rather than over training: a probe per layer
(``learnscope probe-hf``'s report, same panel ids as a run's report: ``probe-{name}``,
``attention``) and accuracy against the number of layers removed (``prune-layers --plot``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from learnscope.errors import UserError, storage_message
from learnscope.files import write_atomic
from learnscope.report import plots
from learnscope.report.build import png
from learnscope.report.html import Panel, render

_SITE = re.compile(
    r"^(?P<probe>[a-z_]+)/blocks\.(?P<layer>\d+)\.(?P<rest>[^/]+(?:\.[^/]+)*)(?:/(?P<tail>.+))?$"
)


def by_probe(values: dict[str, float]) -> dict[str, dict[str, dict[int, float]]]:
    """``{probe: {series: {layer: value}}}`` from names ``probe/blocks.{i}.site[/tail]``; the
    series is the site without its layer (and the tail: ``h0``, ``n1``).

    >>> by_probe({"effective_rank/blocks.1.hook_resid_post": 3.0})
    {'effective_rank': {'hook_resid_post': {1: 3.0}}}
    """
    out: dict[str, dict[str, dict[int, float]]] = {}
    for name, value in values.items():
        m = _SITE.match(name)
        if m is None:
            continue
        series = m["rest"] + (f"/{m['tail']}" if m["tail"] else "")
        out.setdefault(m["probe"], {}).setdefault(series, {})[int(m["layer"])] = value
    return out


@plots.literal_text
def per_layer(name: str, series: dict[str, dict[int, float]]):
    """One probe against the layer index, a line per series."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for label, points in series.items():
        layers = sorted(points)
        ax.plot(layers, [points[i] for i in layers], marker="o", lw=1.2, label=label)
    ax.set_xlabel("layer")
    ax.set_title(f"{name} per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@plots.literal_text
def heads(series: dict[str, dict[int, float]]):
    """Attention entropy as a heat map layer x head."""
    import matplotlib.pyplot as plt

    grid: dict[tuple[int, int], float] = {}
    for label, points in series.items():
        head = int(label.rsplit("/h", 1)[1])
        grid.update({(layer, head): v for layer, v in points.items()})
    n_layers = max(k[0] for k in grid) + 1
    n_heads = max(k[1] for k in grid) + 1
    values = np.full((n_layers, n_heads), np.nan)
    for (layer, head), v in grid.items():
        values[layer, head] = v
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    im = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title("attention entropy per head (nats)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def layer_panels(values: dict[str, float]) -> list[Panel]:
    """The panels of a per-layer probe report."""
    panels = []
    for name, series in by_probe(values).items():
        if name == "attention_entropy":
            panels.append(Panel("attention", "Attention entropy per head", png(heads(series))))
        else:
            panels.append(Panel(f"probe-{name}", f"Probe: {name}", png(per_layer(name, series))))
    return panels


def write_layer_report(values: dict[str, float], out: Path, title: str, caption: str = "") -> Path:
    """One HTML page with :func:`layer_panels`; nothing written if it cannot be drawn."""
    out = Path(out)
    if not out.parent.is_dir():
        raise UserError(f"--report: directory {out.parent} does not exist")
    page = render(title, layer_panels(values), [], caption)
    try:
        write_atomic(out, page)
    except OSError as err:
        if storage_message(err) is not None:
            raise  # a full disk: one line, exit 1
        raise UserError(f"--report: cannot write {out}: {err.strerror or err}") from None
    return out


@plots.literal_text
def pruning_curve(rows: list[dict], metric: str, layers: int, title: str):
    """``metric`` against the number of layers removed: the most similar block (Gromov et al.
    2024), the same after healing, and the baseline that drops the deepest layers but the last.
    ``rows``: ``{"n", "pruned", "healed", "baseline", "baseline_healed"}`` (a missing or None
    value is not drawn), ``n = 0`` the whole model."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for key, label, style in (
        ("pruned", "most similar block removed", "o-"),
        ("healed", "... then healed", "s--"),
        ("baseline", "deepest layers removed (baseline)", "^:"),
        ("baseline_healed", "... then healed", "v-."),
    ):
        pts = [(r["n"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), style, lw=1.3, label=label)
    ax.set_xlabel(f"layers removed (of {layers})")
    ax.set_ylabel(metric)
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
