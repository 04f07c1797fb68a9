"""The second round of bad input (issue 28): every value the fuzz reached is checked at the
root, before anything is written. Each case ends in one line on stderr, exit code 2, no
traceback, and nothing written (no run directory, no row of a run or a sweep)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.store import Store
from tests.reliability.test_fuzz import (
    BASE,
    SPEC,
    assert_refused,
    invoke,
    nothing_written,
    run_config,
    sweep,
    time_limit,
    write,
)

VCR = "train.regularizers=[{kind: vcr, layers: [layers.0.hook_post], "

SET_CASES = [
    # regularisers: checked against the model before training
    (VCR + "positions: []}]", ["positions", "1 to 4096"]),
    (VCR + "positions: [100000]}]", ["positions", "out of range", "length 1"]),
    (VCR + "proj_dim: 100000}]", ["proj_dim", "16384"]),
    # probe options
    ("probes=[{probe: lidar, sites: [layers.0.hook_post], views: -5}]", ["views", "2..1024"]),
    ("probes=[{probe: lidar, sites: [layers.0.hook_post], views: true}]", ["views"]),
    ("probes=[{probe: local_rank, sites: [layers.1.hook_post], rows: 10000000}]", ["rows"]),
    ("probes=[{probe: matrix_entropy, sites: [layers.0.hook_post], alpha: 0}]", ["alpha"]),
    # claim values
    (
        "claims=[{name: a, statement: s, key: test_acc, threshold: '>=...'}]",
        ["threshold", "comparison"],
    ),
    ("claims=[{name: a, statement: s, key: test_acc, threshold: '>=1e999'}]", ["threshold"]),
    # names: Unicode that cannot be encoded
    ('name="\\ud83d\\ude00"', ["name", "UTF-8"]),
    # counts of steps and sizes are bounded; no boolean is a number
    ("train.steps=1e20", ["train.steps"]),
    ("train.steps=1000000001", ["train.steps", "1000000000"]),
    ("train.warmup_steps=9223372036854775808", ["train.warmup_steps"]),
    ("train.checkpoint_every=9223372036854775807", ["train.checkpoint_every"]),
    ("probe_batch.size=1000000000", ["probe_batch.size"]),
    ("train.eval_every=true", ["train.eval_every", "boolean"]),
    # files: regular files only, read with a cap
    ("task.train_data=/etc/hostname", ["task.train_data", ".pt file"]),
    ("task.train_data=/dev/zero", ["task.train_data", "not a regular file"]),
]


@pytest.mark.parametrize("override, needles", SET_CASES, ids=[c[0][:48] for c in SET_CASES])
def test_bad_value_is_one_line(override, needles, tmp_path):
    res, runs = run_config(tmp_path, BASE, "--set", override)
    assert_refused(res, runs, *needles)


def test_a_name_with_an_emoji_trains(tmp_path):
    res, runs = run_config(tmp_path, BASE, "--set", 'name="grok \\U0001F600"')
    assert res.exit_code == 0, res.output
    assert Store(runs).runs()["name"].iloc[0] == "grok \U0001f600"


def test_a_long_value_is_cut_in_every_message(tmp_path):
    res, runs = run_config(tmp_path, BASE, "--set", "model.kind=" + "k" * 20_000)
    assert_refused(res, runs, "model.kind")
    assert len(res.stderr) < 400


def test_a_device_as_the_config(tmp_path):
    res = invoke(["run", "/dev/zero"], tmp_path / "runs")
    assert_refused(res, tmp_path / "runs", "/dev/zero", "not a regular file")


def test_a_huge_yaml_is_refused_before_it_is_parsed(tmp_path):
    """A 2 MB list of 10^6 numbers took 70 s to be refused; the size cap refuses it unread."""
    path = tmp_path / "big.yaml"
    path.write_text("x: [" + ", ".join(["1"] * 1_000_000) + "]\n")
    res = invoke(["run", str(path)], tmp_path / "runs")
    assert_refused(res, tmp_path / "runs", "larger than")
    spec = tmp_path / "s.yaml"
    spec.write_text(path.read_text())
    res = invoke(["sweep", str(spec)], tmp_path / "runs")
    assert_refused(res, tmp_path / "runs", "larger than")


@pytest.mark.parametrize("where", ["/etc/passwd", "/proc/nope/runs"])
def test_runs_dir_must_be_a_writable_directory(tmp_path, where):
    cfg = write(tmp_path, BASE)
    for args in (["run", str(cfg), "-q"], ["ls"], ["sweep", str(write(tmp_path, SPEC, "s.yaml"))]):
        with time_limit():
            res = CliRunner().invoke(app, [*args, "--runs-dir", where])
        if args == ["ls"] and where.startswith("/proc"):
            assert res.exit_code == 0  # nothing there: "no runs yet" is the truth
            continue
        assert res.exit_code == 2, (args, res.output)
        assert len(res.stderr.strip().splitlines()) == 1 and "--runs-dir" in res.stderr


def test_tensorboard_must_be_a_writable_directory(tmp_path):
    res, runs = run_config(tmp_path, BASE, "--tensorboard", "/proc/nope/tb")
    assert_refused(res, runs, "--tensorboard")
    res, runs = run_config(tmp_path, BASE, "--tensorboard", "/etc/passwd")
    assert_refused(res, runs, "--tensorboard")


R = ["--runs-dir", "RUNS"]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["analytic", "--width", "1000000000"], ["--width"]),
        (["analytic", "--seed", "-1"], ["--seed"]),
        (["show", "last", "--rows", "-5", *R], ["--rows"]),
        (["show", "last", "--rows", "abc", *R], ["--rows"]),
        (["run", "--bogus", *R], ["No such option", "run --help"]),
        (["bogus"], ["No such command"]),
        (["sweep", "show", *R], ["Missing argument"]),
        (["sweep", "show", "", *R], ["sweep"]),
        (["report", *R, "last", "--x"], ["--x"]),
        (["probe-hf", "m", "--context", "1"], ["--context"]),
        (["probe-hf", "m", "--rows", "0"], ["--rows"]),
    ],
    ids=lambda v: " ".join(a for a in v if a not in R) if isinstance(v, list) and v[0] else None,
)
def test_cli_mistakes_are_one_line(tmp_path, args, needles):
    """click's usage errors (a bad option value, an unknown option or command, a missing
    argument) are one line too, not the multi-line usage box."""
    runs = tmp_path / "runs"
    res = CliRunner().invoke(app, [str(runs) if a == "RUNS" else a for a in args])
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert nothing_written(runs)


def test_sweep_show_of_an_empty_name_matches_nothing(tmp_path):
    res, runs = sweep(tmp_path, SPEC)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["sweep", "show", "", "--runs-dir", str(runs)])
    assert res.exit_code == 2 and "got ''" in res.stderr, res.output


@pytest.mark.parametrize(
    "change, needles",
    [
        ({"show": {"values": 5}}, ["sweep.show.values"]),
        ({"show": {"value": [1]}}, ["sweep.show.value"]),
        ({"show": {"by": [1]}}, ["sweep.show.by"]),
        ({"show": {"by": "model.nope"}}, ["sweep.show.by", "allowed"]),
        ({"show": {"headline": ""}}, ["sweep.show.headline"]),
        ({"cases": {"a": {"seed": True}, "b": {"seed": 1}}}, ["seed", "integer"]),
        ({"cases": {"a": {"train.steps": True}}}, ["train.steps", "boolean"]),
    ],
    ids=["values 5", "value [1]", "by [1]", "by unknown", "headline empty", "case seed true",
         "case steps true"],
)  # fmt: skip
def test_bad_sweep_show_and_cases_are_refused_before_training(tmp_path, change, needles):
    res, runs = sweep(tmp_path, {**SPEC, **change})
    assert_refused(res, runs, *needles)


def test_resume_cannot_shorten_a_finished_run(tmp_path):
    res, runs = run_config(tmp_path, {**BASE, "train": {**BASE["train"], "steps": 30}})
    assert res.exit_code == 0, res.output
    store = Store(runs)
    run_id = store.runs()["id"].iloc[0]
    res = invoke(["run", "--resume", run_id, "--set", "train.steps=1"], runs)
    assert res.exit_code == 2 and "30" in res.stderr and "train.steps" in res.stderr, res.output
    assert store.run(run_id)["config"]["train"]["steps"] == 30  # not changed
    assert store.run(run_id)["summary"]["steps"] == 30


def test_an_unreachable_ray_address_is_refused_fast(tmp_path):
    """``--address 127.0.0.1:1`` hung over 60 s and wrote the sweep's row before connecting;
    now the address is tried first, for 5 s at most (the alarm of ``time_limit`` guards a
    hang; the time it takes is a figure in docs/reliability.md, not an assertion)."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'learnscope[ray]')")
    path = write(tmp_path, SPEC, "s.yaml")
    runs = tmp_path / "runs"
    t0 = time.perf_counter()
    res = invoke(["sweep", str(path), "--backend", "ray", "--address", "127.0.0.1:1"], runs)
    print(f"refused in {time.perf_counter() - t0:.2f} s")
    assert_refused(res, runs, "--address", "127.0.0.1:1", "nothing was recorded")
    assert not (runs / "learnscope.db").exists()


# -- probe-hf: the model's positions, its tokenizer, its files ---------------------------------


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """A tiny GPT-2 with 64 positions saved with its tokenizer; the same without tokenizer
    files; a directory whose pytorch_model.bin is not a torch file."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("abcdefghij .")}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    )
    cfg = transformers.GPT2Config(
        vocab_size=len(vocab), n_positions=64, n_embd=8, n_layer=2, n_head=2
    )
    root = tmp_path_factory.mktemp("hf")
    full, bare, foreign = root / "full", root / "bare", root / "foreign"
    net = transformers.GPT2LMHeadModel(cfg)
    net.save_pretrained(full)
    fast.save_pretrained(full)
    net.save_pretrained(bare)
    cfg.save_pretrained(foreign)
    fast.save_pretrained(foreign)
    (foreign / "pytorch_model.bin").write_bytes(b"\x80\x04not a torch file" * 10)
    text = root / "t.txt"
    text.write_text("abc def ghij. " * 200)
    return full, bare, foreign, text


def test_probe_hf_context_beyond_the_models_positions(hf_dirs):
    full, _, _, text = hf_dirs
    res = CliRunner().invoke(app, ["probe-hf", str(full), "--text", str(text)])  # 128 > 64
    assert res.exit_code == 2 and "--context" in res.stderr and "64" in res.stderr, res.output
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["probe-hf", str(full), "--text", str(text), "--context", "64"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("case", ["no tokenizer", "foreign weights", "text from a device"])
def test_probe_hf_files(hf_dirs, case):
    full, bare, foreign, text = hf_dirs
    model, path, needle = {
        "no tokenizer": (bare, text, "no tokenizer"),
        "foreign weights": (foreign, text, "cannot load"),
        "text from a device": (full, Path("/dev/zero"), "not a regular file"),
    }[case]
    with time_limit():
        res = CliRunner().invoke(app, ["probe-hf", str(model), "--text", str(path)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.output, res.output
