"""Malformed configs, ``--set`` values and sweep specs: every one either trains (finished or
diverged) or stops with one line on stderr, exit code 2, no traceback and nothing written.

Explicit regressions for each case a fuzz of 1 484 inputs found, then a property-based fuzz
(hypothesis) of run configs, ``--set`` strings and sweep specs; the large fuzz is ``slow``.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import sqlite3
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.errors import UserError
from learnscope.sweep import expand, load_spec

BASE = {
    "name": "fuzz",
    "seed": 0,
    "task": {"name": "modular", "op": "add", "p": 7, "train_fraction": 0.5},
    "model": {"kind": "mlp", "width": 8, "depth": 2, "activation": "relu"},
    "train": {"lr": 0.01, "steps": 2, "eval_every": 1},
    "probes": [],
}
SHORT = ["--set", "train.steps=2", "--set", "train.eval_every=1"]
SPEC = {
    "name": "fuzz-sweep",
    "config": copy.deepcopy(BASE),
    "grid": {"train.weight_decay": [0.0, 1.0]},
    "random": {"count": 2, "seed": 0, "params": {"train.lr": {"loguniform": [1e-3, 1e-2]}}},
    "seeds": 1,
    "show": {"pivot": ["train.weight_decay", "train.lr"]},
}
#: seconds one case may take (a hang is a failure, not a stuck test run)
CASE_LIMIT = 30


class Hung(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int = CASE_LIMIT):
    def alarm(signum, frame):
        raise Hung(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def nothing_written(runs: Path) -> bool:
    """No run directory and no row of any run or sweep in the store."""
    if not runs.exists():
        return True
    if any(p.is_dir() for p in runs.iterdir()):
        return False
    db = runs / "learnscope.db"
    if not db.exists():
        return True
    with contextlib.closing(sqlite3.connect(db)) as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        return all(
            con.execute(f"select count(*) from {t}").fetchone()[0] == 0
            for t in ("runs", "sweeps")
            if t in tables
        )


def invoke(args: list[str], runs: Path):
    with time_limit():
        return CliRunner().invoke(app, [*args, "--runs-dir", str(runs), "-q"])


def assert_refused(res, runs: Path, *needles: str) -> None:
    """Exit 2, exactly one line on stderr naming ``needles``, no traceback, nothing written."""
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert res.exit_code == 2, (res.exit_code, res.output, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output + res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert nothing_written(runs)


def assert_sane(res, runs: Path) -> None:
    """A finished run (exit 0), a diverged one (exit 1, said so), or a refusal."""
    if res.exit_code == 0:
        return
    if res.exit_code == 1 and res.stderr.startswith("diverged"):
        return
    assert_refused(res, runs)


def write(tmp_path: Path, data, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def run_config(tmp_path: Path, data, *extra: str):
    runs = tmp_path / "runs"
    return invoke(["run", str(write(tmp_path, data)), *extra], runs), runs


# -- regressions: each case the fuzz of the issue found ---------------------------------------

SET_CASES = [
    # tracebacks
    ("seed=100000000000000000000", ["seed"]),
    ("task.seed=-1", ["task.seed"]),
    ("model.init_std=-1", ["init_std"]),
    ("model.init_std=.nan", ["model.init_std", "finite"]),
    ("train.betas=[2, 3]", ["train.betas"]),
    ("train.lr=1e300", ["train.lr"]),
    ("task={name: parity, lo: 1, hi: 3, n_train: 8, n_test: 4}", ["model.kind", "gpt"]),
    # hangs
    ("task.n_terms=100000000000000000000000", ["task.n_terms"]),
    ("model.depth=100000000000000000000000", ["model", "parameters"]),
    ("model.width=100000000", ["model", "parameters", "bytes"]),
    # accepted silently
    ("train.steps=true", ["train.steps", "boolean"]),
    ("train.lr=.inf", ["train.lr", "finite"]),
    ("train.weight_decay=.nan", ["train.weight_decay", "finite"]),
    ("events.grok_threshold=.nan", ["events.grok_threshold"]),
    ("task.train_fraction=.nan", ["task.train_fraction"]),
    ("model.init_scale=-1", ["init_scale"]),
    ("model.bias=1.5", ["model.bias"]),
    ("train.batch_size=false", ["train.batch_size", "boolean"]),
    ("expect.bogus='>=1'", ["expect", "replaced by claims"]),
    # unknown fields: the allowed ones and the closest
    ("train.lrr=1", ["train.lrr", "did you mean train.lr?", "allowed:"]),
    ("events.grok_treshold=0.9", ["did you mean events.grok_threshold?"]),
    ("probe_batch.szie=3", ["did you mean probe_batch.size?"]),
    ("sed=1", ["did you mean seed?"]),
    ("model.widht=8", ["did you mean model.width?"]),
    ("task.pp=7", ["did you mean task.p?"]),
]


def test_a_batch_whose_activations_cannot_fit_is_refused(tmp_path, monkeypatch):
    """The full training split of a larger table through the MLP is estimated before anything
    is written (here against a 1 MiB limit: 61^2 / 2 rows x ~250 floats x 8 bytes)."""
    monkeypatch.setattr("learnscope.runner.memory_limit", lambda: 2**20)
    res, runs = run_config(tmp_path, BASE, "--set", "task.p=61")
    assert_refused(res, runs, "train.batch_size", "activations", "GiB")
    res, runs = run_config(tmp_path, BASE, "--set", "task.p=61", "--set", "train.batch_size=8")
    assert res.exit_code == 0, res.output  # minibatches fit


@pytest.mark.parametrize("override, needles", SET_CASES, ids=[c[0][:40] for c in SET_CASES])
def test_bad_set_is_one_line(override, needles, tmp_path):
    res, runs = run_config(tmp_path, BASE, "--set", override)
    assert_refused(res, runs, *needles)


def test_non_utf8_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    res = invoke(["run", str(path)], tmp_path / "runs")
    assert_refused(res, tmp_path / "runs", "UTF-8")


def test_nesting_5000_deep(tmp_path):
    res, runs = run_config(tmp_path, "name: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_refused(res, runs, "nested deeper")
    res, runs = run_config(tmp_path, BASE, "--set", "seed=" + "[" * 5000 + "]" * 5000)
    assert_refused(res, runs, "seed")  # read as text (not YAML), then refused


def test_circular_alias(tmp_path):
    text = yaml.safe_dump(BASE) + "description: &a [*a]\n"
    res, runs = run_config(tmp_path, text)
    assert_refused(res, runs, "aliases")


def test_billion_laughs_in_name(tmp_path):
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        laughs.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    text = "x:\n" + "\n".join("  " + line for line in laughs) + "\nname: *i\n"
    res, runs = run_config(tmp_path, yaml.safe_dump(BASE) + text)
    assert_refused(res, runs, "aliases")


def test_polynomial_with_a_huge_exponent_trains(tmp_path):
    task = {"name": "modular", "op": "poly", "p": 7, "coefficients": [[10**9, 1, 1]]}
    res, runs = run_config(tmp_path, {**BASE, "task": task})
    assert res.exit_code == 0, res.output


def test_error_never_shows_a_huge_value(tmp_path):
    res, runs = run_config(tmp_path, BASE, "--set", "train.lr=" + "x" * 100_000)
    assert_refused(res, runs, "train.lr")
    assert len(res.stderr) < 400


def sweep(tmp_path: Path, spec: dict):
    runs = tmp_path / "runs"
    return invoke(["sweep", str(write(tmp_path, spec, "s.yaml"))], runs), runs


@pytest.mark.parametrize(
    "change, needles",
    [
        (
            {"random": {"count": 2, "params": {"train.lr": {"uniform": [float("nan"), 1]}}}},
            ["sweep.random.params", "finite"],
        ),
        ({"show": {"pivot": ["train.weight_decay", "model.nope"]}}, ["show.pivot", "model.nope"]),
        ({"show": {"pivott": []}}, ["did you mean sweep.show.pivot?"]),
        ({"seds": 2}, ["sweep.seds", "did you mean sweep.seeds?"]),
        ({"random": {"count": 1, "seed": -1, "params": {}}}, ["sweep.random.seed"]),
        ({"seeds": True}, ["sweep.seeds", "boolean"]),
    ],
)
def test_bad_sweep_spec_is_one_line_before_training(change, needles, tmp_path):
    res, runs = sweep(tmp_path, {**SPEC, **change})
    assert_refused(res, runs, *needles)


# -- the fuzz -------------------------------------------------------------------------------

PATHS = [
    "name", "seed", "description", "bogus", "sed",
    "task.p", "task.op", "task.train_fraction", "task.noise", "task.n_terms", "task.seed",
    "task.coefficients", "task.n_examples", "task.name", "task.pp",
    "model.kind", "model.width", "model.depth", "model.activation", "model.init_std",
    "model.init_scale", "model.power", "model.dropout", "model.embed", "model.d_embed",
    "model.bias", "model.widht",
    "train.lr", "train.weight_decay", "train.betas", "train.eps", "train.momentum",
    "train.batch_size", "train.optimizer", "train.schedule", "train.warmup_steps",
    "train.min_lr_ratio", "train.grad_clip", "train.precision", "train.lrr", "train.loss",
    "events.grok_threshold", "events.slingshot_spike", "events.collapse_patience",
    "events.grok_treshold", "probe_batch.size", "probe_batch.split", "expect", "expect.test_acc",
    "expect.bogus", "train", "task", "model",
]  # fmt: skip


def deep(n: int):
    value: object = 0
    for _ in range(n):
        value = [value]
    return value


# integers small, huge or negative (a mid-sized table or width that fits trains for real)
INTS = st.integers(-3, 64) | st.sampled_from([-(10**20), 2**63, 10**9, 10**23, 10**400])
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [float("nan"), float("inf"), -float("inf"), 1e300, -1e-300, 0.0, 0.5, 0.999]
)
SCALARS = INTS | FLOATS | st.booleans() | st.none() | st.text(max_size=12)
VALUES = (
    SCALARS
    | st.lists(SCALARS, max_size=4)
    | st.dictionaries(st.text(max_size=6), SCALARS, max_size=3)
    | st.integers(10, 200).map(deep)
)
MUTATIONS = st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3)
SNIPPETS = st.sampled_from(
    [
        "1e400", ".nan", "-.inf", "true", "no", "[1, [2", "&a [*a]", "{a: 1}", "-1", "1e300",
        "10**23", "100000000000000000000000", "[2, 3]", "''", "~", "!!python/object:os.system",
        "[" * 2000, "'\\xff'", "0x10", "1_000", "0.5", "quadratic",
    ]
) | st.text(max_size=20)  # fmt: skip

FUZZ = settings(
    deadline=None,  # the hard limit is time_limit(): torch's first call is slow
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def set_path(data: dict, path: str, value) -> None:
    node = data
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def check_config(tmp_path: Path, mutations) -> None:
    data = copy.deepcopy(BASE)
    for path, value in mutations:
        set_path(data, path, value)
    runs = tmp_path / f"runs{len(list(tmp_path.iterdir()))}"  # hypothesis reuses tmp_path
    path = write(tmp_path, yaml.safe_dump(data, allow_unicode=True))
    res = invoke(["run", str(path), *SHORT], runs)  # short: 2 steps
    assert_sane(res, runs)


def check_set(tmp_path: Path, path: str, raw: str) -> None:
    runs = tmp_path / f"runs{len(list(tmp_path.iterdir()))}"
    cfg = write(tmp_path, BASE)
    res = invoke(["run", str(cfg), "--set", f"{path}={raw}", *SHORT], runs)
    assert_sane(res, runs)


def check_spec(mutations) -> None:
    """A spec is refused in one line, or expands and its ``show`` reads back the way ``sweep
    show`` and the sweep's report read it (a ``show`` that passed the check used to crash every
    ``sweep show`` after training)."""
    from learnscope.cli.sweep import headlined
    from learnscope.sweep.tables import _shown_values

    spec = copy.deepcopy(SPEC)
    for path, value in mutations:
        set_path(spec, path, value)
    with time_limit():
        try:
            parsed = load_spec(spec)
            expand(parsed)
        except UserError as err:
            assert "\n" not in str(err) and len(str(err)) < 2000, str(err)
            return
    for name in [*headlined(parsed.show), *_shown_values(parsed)]:
        assert isinstance(name, str) and name, parsed.show
    by = parsed.show.get("by")
    assert by is None or by in parsed.axes, parsed.show


SPEC_PATHS = [
    "name", "seeds", "seds", "grid.train.lr", "grid", "random.count", "random.seed",
    "random.params.train.lr.uniform", "random.params.model.width.choice", "random.params",
    "show.pivot", "show.values", "show.pivott", "set.train.lr", "config.train.lr",
    "config.model.width", "resources.num_cpus", "base", "config",
    # issue 28: show and cases
    "show.value", "show.by", "show.headline", "show.correlate", "cases", "cases.a",
    "cases.a.seed", "cases.a.train.steps", "cases.b.model.width", "cases.a.train.lr",
]  # fmt: skip


# regularisers and probe entries (issue 28): each field of an entry drawn from VALUES or a
# few meaningful values, the entry set as ``train.regularizers`` or ``probes``
REGULARIZER = st.fixed_dictionaries(
    {"kind": st.sampled_from(["vcr", "seq_vcr", "sas", "bogus"])},
    optional={
        "layers": st.sampled_from([["layers.0.hook_post"], ["nope"], [], "layers.*"]) | VALUES,
        "positions": st.sampled_from(["all", [], [0], [-1], [100000], [0, 0]]) | VALUES,
        "proj_dim": INTS | VALUES,
        "lambda_var": FLOATS,
        "lambda_cov": FLOATS,
        "eps": FLOATS,
        "until_step": INTS,
    },
)
PROBE_NAMES = [
    "lidar", "mmcr", "effective_rank", "matrix_entropy", "local_rank", "partial_jacobian_norm",
    "incremental_rank", "ipr", "fourier_power", "angular_distance", "hessian_top_eigenvalue",
    "ntk_distance", "nope",
]  # fmt: skip
PROBE_OPTIONS = [
    "views", "delta", "eps", "alpha", "rows", "threshold", "n", "n_proj", "exact_max", "iters",
    "parts", "p", "basis", "input", "source", "every", "bogus",
]  # fmt: skip
PROBE_ENTRY = st.builds(
    lambda probe, sites, options: {"probe": probe, "sites": sites, **options},
    st.sampled_from(PROBE_NAMES),
    st.sampled_from([["layers.*.hook_post"], ["layers.0.linear.weight"], [], ["nope"]]),
    st.dictionaries(st.sampled_from(PROBE_OPTIONS), SCALARS | VALUES, max_size=2),
)


def _fuzz_entries(tmp_path, n):
    @settings(FUZZ, max_examples=n)
    @given(
        st.one_of(
            st.lists(REGULARIZER, min_size=1, max_size=2).map(lambda r: ("train.regularizers", r)),
            st.lists(PROBE_ENTRY, min_size=1, max_size=2).map(lambda p: ("probes", p)),
        )
    )
    def case(mutation):
        check_config(tmp_path, [mutation])

    case()


def _fuzz_run_configs(tmp_path, n):
    @settings(FUZZ, max_examples=n)
    @given(MUTATIONS)
    def case(mutations):
        check_config(tmp_path, mutations)

    case()


def _fuzz_set(tmp_path, n):
    @settings(FUZZ, max_examples=n)
    @given(st.sampled_from(PATHS), SNIPPETS)
    def case(path, raw):
        check_set(tmp_path, path, raw)

    case()


def _fuzz_specs(n):
    @settings(FUZZ, max_examples=n)
    @given(st.lists(st.tuples(st.sampled_from(SPEC_PATHS), VALUES), min_size=1, max_size=3))
    def case(mutations):
        check_spec(mutations)

    case()


def test_fuzz_run_configs(tmp_path):
    _fuzz_run_configs(tmp_path, 60)


def test_fuzz_set_values(tmp_path):
    _fuzz_set(tmp_path, 50)


def test_fuzz_sweep_specs():
    _fuzz_specs(60)


def test_fuzz_regularizers_and_probe_options(tmp_path):
    _fuzz_entries(tmp_path, 40)


@pytest.mark.slow
def test_fuzz_large(tmp_path):
    _fuzz_run_configs(tmp_path, 500)
    _fuzz_set(tmp_path, 400)
    _fuzz_specs(1500)
    _fuzz_entries(tmp_path, 400)
