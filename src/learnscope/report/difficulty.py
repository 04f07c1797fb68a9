"""The panel of ``learnscope eval`` runs: accuracy against difficulty, one line per model."""

from __future__ import annotations

import numpy as np

from learnscope.report import plots


@plots.literal_text
def accuracy_vs_difficulty(runs: list[plots.Series], axes_names: list[str]):
    """``eval/acc`` per level (the metric rows' step is the level's value) with its Wilson 95 %
    interval as error bars, a line per eval run; None if no run has any."""
    import matplotlib.pyplot as plt

    fig, axes = plots.figure(runs=len(runs))
    ax, drawn = axes[0, 0], 0
    for run in runs:
        if "eval/acc" not in run.table:
            continue
        t = run.table[["eval/acc", "eval/acc_lo", "eval/acc_hi"]].dropna()
        if t.empty:
            continue
        acc = t["eval/acc"].to_numpy()
        err = np.clip(
            [acc - t["eval/acc_lo"].to_numpy(), t["eval/acc_hi"].to_numpy() - acc], 0, None
        )
        ax.errorbar(
            t.index, acc, yerr=err, fmt="o-", capsize=3, lw=1.3, color=run.colour, label=run.label
        )
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel(" / ".join(dict.fromkeys(axes_names)) or "level")
    ax.set_ylabel("exact-match accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("accuracy against difficulty (fresh instances)")
    ax.grid(alpha=0.3)
    plots.legend(ax, runs)
    fig.tight_layout()
    return fig
