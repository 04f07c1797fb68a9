"""probe-hf, prune-layers --hf and eval on a tiny random GPT-2 saved with save_pretrained
(random weights: accuracy near chance, but loading, prompting, parsing and scoring run)."""

from __future__ import annotations

import datetime as dt

from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.store import Store

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


TEXT = "the cat sat on the mat. 12+34=46. " * 20


def test_probe_hf_on_text_and_task(saved, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    report = tmp_path / "p.html"
    res = invoke(
        "probe-hf", saved, "--text", text, "--rows", 4, "--context", 32, "--report", report
    )
    assert res.exit_code == 0, res.output
    for name in ("effective_rank", "matrix_entropy", "attention_entropy", "angular_distance"):
        assert name in res.output
    page = report.read_text()
    assert 'data-panel="attention"' in page and 'data-panel="probe-effective_rank"' in page
    res = invoke(
        "probe-hf",
        saved,
        "--task",
        "addition",
        "--params",
        "hi=3",
        "--rows",
        8,
        "--probe",
        "angular_distance",
        "--n",
        2,
    )
    assert res.exit_code == 0, res.output
    assert "8 instances of addition" in res.output and "effective_rank" not in res.output


def test_prune_layers_hf_saves_the_pruned_model(saved, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    out = tmp_path / "pruned"
    res = invoke(
        "prune-layers", "--hf", saved, "--n", 2, "--text", text, "--out", out, "--context", 32
    )
    assert res.exit_code == 0, res.output
    assert "perplexity" in res.output and (out / "config.json").exists()
    import transformers

    assert transformers.AutoModelForCausalLM.from_pretrained(out).config.n_layer == 2
    res = invoke("prune-layers", "--hf", saved, "--n", 2, "--text", text, "--out", out)
    assert res.exit_code == 2 and "not an empty directory" in res.output


def test_eval_hf_model_is_stored_and_reproducible(saved, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    args = [
        "eval",
        saved,
        "--task",
        "multiplication",
        "--level",
        "n_digits,m_digits=1,2",
        "--n",
        6,
        "--runs-dir",
        runs,
    ]
    res = invoke(*args, "--fresh")
    assert res.exit_code == 0, res.output
    seed = int(res.output.split("seed ")[1].split()[0])
    today = dt.datetime.now(dt.timezone.utc).date()
    assert seed == today.year * 10000 + today.month * 100 + today.day
    assert "n_digits,m_digits" in res.output
    again = invoke(*args, "--seed", seed)
    assert again.exit_code == 0
    store = Store(runs)
    ids = list(store.runs()["id"])
    tables = [store.metric_table(i) for i in ids]
    assert tables[0].equals(tables[1])  # the printed seed repeats the draw and the scores
    assert store.run(ids[0])["config"]["model"] == {"kind": "hf", "ref": str(saved)}


def test_hf_errors(tmp_path):
    res = invoke("probe-hf", tmp_path / "missing")
    assert res.exit_code == 2 and "--text FILE or --task NAME" in res.output
    text = tmp_path / "t.txt"
    text.write_text("hello")
    res = invoke("probe-hf", tmp_path / "missing", "--text", text)
    assert res.exit_code == 2 and "cannot load" in res.output
