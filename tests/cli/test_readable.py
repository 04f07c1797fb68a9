"""Small things a reader of the CLI meets: a misspelt recipe gets a "did you mean", ``learnscope
report`` alone says what to give, the help reads as prose without type tags on flags, and the
``show`` table never breaks a header inside a word."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from learnscope.cli import app, common
from learnscope.store import Store
from tests.cli.test_output import config


def invoke(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, env=env)


@pytest.mark.parametrize(
    "command", [["run"], ["generations"], ["coord-check"], ["capacity"]], ids=lambda c: c[0]
)
def test_a_misspelt_recipe_gets_a_did_you_mean(command, tmp_path):
    res = invoke(*command, "groking-mlp", "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "did you mean 'grokking-mlp'?" in lines[0], res.output
    assert "sigma-reparam" not in res.output  # the closest name, not all 44
    assert not (tmp_path / "runs").exists()  # nothing written


def test_an_unknown_recipe_far_from_any_still_lists_them(tmp_path):
    res = invoke("run", "zzzz", "--runs-dir", tmp_path / "runs")
    assert res.exit_code == 2 and "did you mean" not in res.output
    assert "grokking-mlp" in res.output and "sigma-reparam" in res.output


def test_report_without_a_run_says_what_to_give(tmp_path):
    store = Store(tmp_path / "runs")
    store.finish_run(store.create_run("m", config("m")).id, "finished", {})
    res = invoke("report", "--runs-dir", store.root)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert not lines[0].startswith("error: run:")
    for what in ("RUN", "several", "--sweep SWEEP", "'last'"):
        assert what in lines[0], lines[0]


def commands(group=None, path=()):
    """Every command path of the CLI (``("sweep", "show")``, ...) and its click command."""
    import typer.main

    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if hasattr(cmd, "commands"):
            yield from commands(cmd, (*path, name))


def first_paragraph(cmd) -> str:
    return " ".join((cmd.help or "").split("\n\n")[0].split())


@pytest.mark.parametrize("columns", [80, 1000])
def test_help_reads_as_prose_without_type_tags_on_flags(columns):
    env = {"COLUMNS": str(columns)}
    res = invoke("--help", env=env)
    assert res.exit_code == 0
    pages = {(): res.output}
    for path, _ in commands():
        sub = invoke(*path, "--help", env=env)
        assert sub.exit_code == 0, (path, sub.output)
        pages[path] = sub.output
    for path, page in pages.items():
        assert "<bool>" not in page and "<list[" not in page, (path, page)
        assert "[[" not in page and "...]..." not in page, (path, page)  # [[RECIPE]], [RUN...]...
    # a flag: its name and its help, nothing between them
    assert re.search(r"--quiet\s+-q\s+no progress bar", pages[("run",)])
    assert re.search(r"--set\s+<str>\.\.\.\s+override", pages[("run",)])
    if columns == 1000:  # room for every sentence: no line breaks where the docstring had one
        top = pages[()]
        for path, cmd in commands():
            text = first_paragraph(cmd)
            if len(path) == 1:
                assert any(text in line for line in top.splitlines()), (path, text)
            assert any(text in line for line in pages[path].splitlines()), (path, text)
        assert "Doshi et al. 2024" in top and "(Doshi, He & Gromov 2023)" in top


@pytest.mark.parametrize("width", [60, 80, 120])
def test_show_never_breaks_a_header_inside_a_word(tmp_path, monkeypatch, width):
    monkeypatch.setattr(common.console, "_width", width)
    store = Store(tmp_path / "runs")
    run = store.create_run("m", config("m"))
    names = ["lr", "test/acc", "test/loss", "train/acc", "train/loss", "train_step/loss"]
    for step in (0, 1160, 2340, 3500):
        store.log(run.id, step, {n: 0.002 if n == "lr" else 7.043e-06 / (1 + step) for n in names})
    store.flush()
    store.finish_run(run.id, "finished", {})
    res = invoke("show", run.id, "--runs-dir", store.root)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    top = max(i for i, line in enumerate(lines) if line.startswith("┏"))
    bottom = next(i for i in range(top, len(lines)) if lines[i].startswith("┡"))
    cells = {c.strip() for line in lines[top + 1 : bottom] for c in line.split("┃")} - {""}
    parts = {"step"} | set(names) | {p for n in names for p in common.header_lines(n)}
    assert cells <= parts, cells - parts  # no "train_step/lo" over "ss"
    shown = {n for n in names if n in cells or set(common.header_lines(n)) <= cells}
    left = next((line for line in lines if line.startswith("left out")), "")
    assert all(n in shown or n in left for n in names), res.output
    if width == 80:  # only the header that has to is broken
        assert {"train/acc", "train/loss", "train_step/", "loss"} <= cells
    if width >= 100:
        assert shown == set(names) and "train_step/loss" in cells  # whole, on one line
