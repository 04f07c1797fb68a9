"""Every figure the report can draw, drawn from a couple of tiny runs (and the figures of the
commands that draw one): every tick label reads as a plain number or a literal name, never raw
mathtext such as ``$\\mathdefault{10^{0}}$`` (mathtext is off in these figures so that user
text stays literal), and no two tick labels of an axis overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learnscope.report import build_report, difficulty, layers, plots
from learnscope.report.compare import compare, write_page
from learnscope.store import Store
from tests.report.test_build import config, synthetic_run

MODULES = (plots, difficulty, layers)


def drawers() -> dict[str, tuple[object, str]]:
    """Every figure function of the report: the ones drawn with mathtext off."""
    return {
        f"{m.__name__.rsplit('.', 1)[1]}.{name}": (m, name)
        for m in MODULES
        for name, f in vars(m).items()
        if getattr(f, "literal", False)
    }


def shown_labels(axis, renderer):
    """The tick labels ``axis`` draws: inside its view, visible, not empty."""
    lo, hi = sorted(axis.get_view_interval())
    pad = (hi - lo) * 1e-9
    out = []
    for tick in axis.get_major_ticks() + axis.get_minor_ticks():
        label = tick.label1
        if lo - pad <= tick.get_loc() <= hi + pad and label.get_visible() and label.get_text():
            out.append((label.get_text(), label.get_window_extent(renderer)))
    return out


def check_ticks(fig, name: str) -> list[str]:
    """Fail on a tick label with mathtext or overlapping its neighbour; the labels read."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = []
    for i, ax in enumerate(fig.axes):
        for which, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            labels = shown_labels(axis, renderer)
            for text, _ in labels:
                assert "$" not in text and "mathdefault" not in text, (name, i, which, text)
                texts.append(text)
            # along the axis, each label ends before the next one starts
            key = (lambda b: (b.x0, b.x1)) if which == "x" else (lambda b: (b.y0, b.y1))
            spans = sorted(key(box) for _, box in labels)
            for (_, a1), (b0, _) in zip(spans, spans[1:]):
                assert a1 <= b0 + 0.5, (name, i, which, [t for t, _ in labels])
    return texts


@pytest.fixture
def drawn(monkeypatch):
    """Each figure function replaced by one that checks its figure's ticks as it is drawn
    (before the report turns it into a PNG); yields ``{function: [tick texts of a figure]}``."""
    seen: dict[str, list[list[str]]] = {}
    for key, (module, name) in drawers().items():
        original = getattr(module, name)

        def checked(*args, _f=original, _key=key, **kwargs):
            fig = _f(*args, **kwargs)
            if fig is not None:
                seen.setdefault(_key, []).append(check_ticks(fig, _key))
            return fig

        checked.literal = True
        monkeypatch.setattr(module, name, checked)
    return seen


def sweep_run(store, lr, width, sweep_id):
    """A member of a sweep over lr x width that recorded per-class accuracies and the
    coordinate check's mean |x| (the inputs of the per-class, lr-transfer and coord-check
    panels)."""
    cfg = config(lr=lr)
    cfg["model"]["width"] = width
    run = store.create_run("sweep-member", cfg, sweep_id)
    for step in (0, 10, 100, 1000, 10000):
        m = {
            "train/loss": 2.0 * math.exp(-step * lr / 10) + lr,
            "test/acc": min(1.0, step / 5000),
            "mean_abs/layers.0.hook_post": 0.5 * (1 + step * lr / 1e3) * (width / 64) ** 0.5,
            "mean_abs/layers.1.hook_post": 0.3 + 0.001 * step * lr,
        }
        m.update({f"test/class_acc/{c}": 1.0 - c / 12 for c in range(10)})
        store.log(run.id, step, m)
    store.flush()
    grok = None if lr > 0.05 else 100 / lr
    summary = {"train_loss": lr * width / 64, "test_acc": 0.9, "grok_test_step": grok}
    store.finish_run(run.id, "finished", summary)
    return run.id


def test_every_figure_has_plain_readable_ticks(tmp_path, tiny_config, drawn):
    from learnscope.runner import execute
    from learnscope.studies.evaluation import LevelResult, record

    store = Store(tmp_path / "runs")
    # one run: curves, a probe per layer with its heat map, attention heads, weight norms
    one = synthetic_run(store)
    build_report(store, [one], tmp_path / "one.html")
    # two runs overlaid (the legend beside the axes), one named like mathtext
    a = synthetic_run(store, config(weight_decay=0.0))
    b = synthetic_run(store, {**config(weight_decay=5.0), "name": "$x^2$"})
    build_report(store, [a, b], tmp_path / "two.html")
    write_page(compare(store, [a, b]), "test/acc", tmp_path / "compare.html")  # the overlay
    # a real tiny modular run: the Fourier spectrum and the IPR histogram
    tiny_config["train"].update(steps=20, eval_every=5)
    build_report(store, [execute(tiny_config, store).run_id], tmp_path / "m.html")
    # a sweep over lr x width: phase diagrams, per-class accuracy, lr transfer, coord check
    for lr in (1e-3, 1e-2, 1e-1):
        for width in (64, 256, 1024):
            sweep_run(store, lr, width, "sweep-lrw")
    rep = build_report(store, [], tmp_path / "sweep.html", sweep="sweep-lrw")
    assert {"phase-grok-step", "per-class", "lr-transfer", "coord-check"} <= set(rep.panels)
    assert rep.panels.index("parallel") < rep.panels.index("summary")
    # eval runs: accuracy against difficulty
    results = [LevelResult(v, 200, 200 - 30 * v) for v in range(1, 6)]
    evals = [record(store, f"eval-{m}", {"model": {"ref": m}}, "length", results) for m in "ab"]
    build_report(store, evals, tmp_path / "eval.html")
    # a per-layer probe report (probe-hf) and the figures of prune-layers and criticality
    values = {f"effective_rank/blocks.{i}.hook_resid_post": 10.0 + i for i in range(12)}
    values |= {
        f"attention_entropy/blocks.{i}.attn.hook_pattern/h{h}": 1.0
        for i in range(4)
        for h in range(4)
    }
    layers.write_layer_report(values, tmp_path / "layers.html", "layers")
    rows = [{"n": n, "pruned": 1 - n / 10, "healed": 1 - n / 20} for n in range(0, 9)]
    layers.pruning_curve(rows, "accuracy", 12, "pruning")
    w2, sb = np.linspace(0.5, 4.0, 8), np.linspace(0.0, 0.5, 6)
    apjn = np.exp(np.add.outer(sb * 2, (w2 - 2) * 20))
    plots.criticality(w2, sb, apjn, [(2.0, 0.0)], [(2.0, 0.0), (2.2, 0.5)], "criticality")

    assert set(drawn) == set(drawers()), f"never drawn: {set(drawers()) - set(drawn)}"
    curves = drawn["plots.curves"]
    # the loss's log y axis reads 0.01, 0.1, 1; its step axis 0, 10, 100
    assert any({"0.01", "1"} <= set(ticks) and {"0", "10", "100"} <= set(ticks) for ticks in curves)
    lrs = {t for ticks in drawn["plots.loss_vs_lr"] for t in ticks}
    assert {"0.001", "0.01", "0.1"} <= lrs


def test_log_tick_labels_are_plain_numbers():
    """Decades and the values between them, on every scale, as plain text."""
    import pandas as pd

    for lo, hi, want in [
        (1e-6, 3.0, {"1e−6", "0.001", "1"}),  # the minus sign is matplotlib's unicode one
        (9.0, 45.0, {"10", "20", "30", "40"}),
        (0.3, 0.9, {"0.3", "0.4", "0.6"}),
        (1e3, 3e7, {"1000", "1e4", "1e6"}),
    ]:
        steps = np.arange(0, 20000, 7)
        table = pd.DataFrame({"train/loss": np.geomspace(hi, lo, len(steps))}, index=steps)
        fig = plots.curves([plots.Series("r", "r", "C0", table, [], ["train"])], "loss", "t", True)
        texts = check_ticks(fig, "curves")
        assert want <= set(texts), texts
        assert {"0", "10", "100", "1000", "1e4"} <= set(texts)  # the step axis


def test_step_ticks_leave_the_linear_stretch_alone():
    """Steps recorded every 5: no tick at 1 inside the linear stretch [0, 5] next to the 0."""
    import pandas as pd

    table = pd.DataFrame({"train/acc": np.linspace(0, 1, 61)}, index=np.arange(0, 305, 5))
    fig = plots.curves([plots.Series("r", "r", "C0", table, [], ["train"])], "acc", "t")
    fig.canvas.draw()
    assert list(fig.axes[0].get_xticks()) == [0, 10, 100]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "10", "100"]


def test_user_text_stays_literal():
    """A run named ``$x^2$``: its legend entry and title are drawn as typed (no mathtext)."""
    import pandas as pd

    table = pd.DataFrame({"train/loss": [1.0, 0.1]}, index=[0, 10])
    runs = [plots.Series(str(i), f"$x^{i}$", f"C{i}", table, [], ["train"]) for i in (1, 2)]
    fig = plots.curves(runs, "loss", "$\\mathdefault{t}$", logy=True)
    fig.canvas.draw()
    ax = fig.axes[0]
    texts = [t for t in ax.get_legend().get_texts() if "$x^" in t.get_text()]
    assert len(texts) == 2 and not any(t.get_parse_math() for t in texts)
    assert not ax.title.get_parse_math()
    check_ticks(fig, "curves")
