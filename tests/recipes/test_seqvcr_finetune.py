"""Seq-VCR fine-tuned from a pretrained decoder (issue 29 item 9; Arefin et al. 2024,
PAPERS.md 1): the recipes seqvcr-pretrain -> multiplication-4x4-finetune-seqvcr (its control,
``vanilla`` in its claims: no pauses, no Seq-VCR, the same start), and
scripts/seqvcr_device.py, the paper-scale run for a GPU (GPT-2 small's sizes, 5x5 digits),
checked end to end at its ``--smoke`` size on a CPU. The claims at new seeds:
tests/test_recipes.py (heavy). Figures in docs/phenomena.md (Seq-VCR)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from learnscope.config import load_config, load_recipe_dict
from learnscope.models import model_config
from learnscope.runner import execute
from learnscope.store import Store
from learnscope.studies.claims import control_overrides, recipe_at_seed
from learnscope.tasks import make_task

FINETUNE = "multiplication-4x4-finetune-seqvcr"
SCRIPT = Path(__file__).parents[2] / "scripts" / "seqvcr_device.py"


def script():
    spec = importlib.util.spec_from_file_location("seqvcr_device", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vanilla(overrides: dict | None = None):
    """The fine-tune's control, as verify builds it: the recipe with the claims' ``set``."""
    (control,) = {c.control.name: c.control for c in load_config(FINETUNE).claims}.values()
    return recipe_at_seed(FINETUNE, 0, {**control_overrides(control, {}), **(overrides or {})})


def test_the_finetune_and_its_control_start_from_the_pretraining_with_its_model():
    pre, fine = load_recipe_dict("seqvcr-pretrain"), load_recipe_dict(FINETUNE)
    assert fine["train"]["init_from"] == "seqvcr-pretrain"
    assert vanilla().train.init_from == "seqvcr-pretrain"
    assert fine["model"] == pre["model"]  # init_from asks for the same model section
    assert fine["model"]["pos"] == "rope"  # no position table: rows of any length load
    a, b = make_task(**pre["task"]), make_task(**fine["task"])
    assert a.vocab == b.vocab and a.block_size != b.block_size  # same tokens, other lengths


def test_only_the_finetune_has_pauses_and_seqvcr_not_its_control():
    seqvcr, control = recipe_at_seed(FINETUNE, 0), vanilla()
    assert seqvcr.task.params["n_pause"] == 2 and control.task.params["n_pause"] == 0
    assert control.task.params["format"] == "plain"
    assert [r.kind for r in seqvcr.train.regularizers] == ["seq_vcr"]
    assert control.train.regularizers == []
    s, v = seqvcr.train.model_dump(), control.train.model_dump()
    assert {k: x for k, x in s.items() if s[k] != v[k]} == {"regularizers": s["regularizers"]}
    assert seqvcr.model == control.model


def test_a_pretrained_run_loads_into_the_4x4_finetune(tmp_path):
    """The pretraining's weights (2x2 CoT rows) start the 4x4 run (shorter rows, pauses):
    the fine-tune's loss at step 0 is the pretrained model's on 4x4 rows, not a fresh one's."""
    store = Store(tmp_path)
    short = ["train.steps=20", "train.eval_every=20", "train.eval_examples=8", "task.n_test=16"]
    pre = execute(load_config("seqvcr-pretrain", [*short, "train.checkpoint_every=20"]), store)
    one = [*short[2:], "train.steps=1", "train.eval_every=1", "probes=[]"]
    fine = execute(load_config(FINETUNE, [*one, f"train.init_from={pre.run_id}"]), store)
    fresh = execute(load_config(FINETUNE, [*one, "train.init_from=null"]), store)
    assert fine.summary["init_from"] == f"{pre.run_id}@20"
    loss = [store.metric_table(r.run_id).loc[0, "test/loss"] for r in (fine, fresh)]
    assert abs(loss[0] - loss[1]) > 0.1, loss  # not a freshly initialised model


def test_the_device_script_builds_gpt2_small():
    mod = script()
    args = mod.argparse.Namespace(
        smoke=False,
        device="cuda",
        digits=5,
        pretrain_digits=3,
        n_pause=2,
        pretrain_steps=2000,
        finetune_steps=2500,
        pretrain_lr=3e-4,
        finetune_lr=1e-4,
        seed=0,
    )
    pre, seqvcr, vanilla = mod.configs(args)
    assert pre["model"] == seqvcr["model"] == vanilla["model"]
    assert (pre["model"]["n_layer"], pre["model"]["d_model"], pre["model"]["n_head"]) == (
        12,
        768,
        12,
    )
    task = make_task(**seqvcr["task"])
    cfg = model_config(
        "gpt", {k: v for k, v in pre["model"].items() if k != "kind"}, task.model_dims()
    )
    assert 84e6 < cfg.n_params() < 86e6  # GPT-2 small's 12 blocks (its 50k-token vocab aside)
    assert seqvcr["task"]["n_digits"] == seqvcr["task"]["m_digits"] == 5
    assert seqvcr["train"]["regularizers"][0]["proj_dim"] == 2048
    assert vanilla["task"]["format"] == "plain" and "regularizers" not in vanilla["train"]


def test_the_device_script_refuses_a_bad_size(capsys):
    with pytest.raises(SystemExit) as err:
        script().main(["--smoke", "--digits", "0"])
    assert err.value.code == 2 and "--digits: must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_the_device_script_runs_end_to_end_on_a_cpu(tmp_path, capsys):
    rows = script().main(
        [
            "--smoke",
            "--device",
            "cpu",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--json",
            str(tmp_path / "out.json"),
        ]
    )
    out = capsys.readouterr().out
    assert "device: cpu" in out and "exact match, pause + Seq-VCR minus vanilla" in out
    for case in ("pause+seqvcr", "vanilla"):
        assert 0 <= rows[case]["test_acc"] <= 1 and rows[case]["lowest_rank"] > 1
    assert (tmp_path / "out.json").exists()
    runs = Store(tmp_path / "runs").runs()
    assert sorted(runs["status"]) == ["finished"] * 3
