"""Every registered probe through the shared tester (``tests/probes/tester.py``): documented
names and finite float values, determinism, float32 against float64, and the dependence on
the probe batch its case declares."""

from __future__ import annotations

from dataclasses import replace

import pytest

from learnscope.probes.registry import PROBES
from tests.probes.tester import CASES, FREE, MEAN, ProbeTester

ALL = sorted(PROBES)


def probe_tester(probe: str) -> ProbeTester:
    if probe not in CASES:
        pytest.fail(f"{probe}: registered without a Case in tests/probes/tester.py CASES")
    return ProbeTester(probe)


def test_every_registered_probe_has_a_case():
    assert sorted(CASES) == ALL


@pytest.mark.parametrize("probe", ALL)
def test_finite_float_values_under_the_documented_names(probe):
    probe_tester(probe).check_values()


@pytest.mark.parametrize("probe", ALL)
def test_two_computations_agree(probe):
    probe_tester(probe).check_deterministic()


@pytest.mark.parametrize("probe", ALL)
def test_float32_agrees_with_float64(probe):
    t = probe_tester(probe)
    if t.case.rtol64 is None:
        pytest.skip(t.case.why_not)
    t.check_float64()


@pytest.mark.parametrize("probe", ALL)
def test_dependence_on_the_probe_batch(probe):
    t = probe_tester(probe)
    if t.case.batch is None:
        pytest.skip(t.case.why_not)
    t.check_batch()


@pytest.mark.parametrize(
    "probe, change",
    [
        ("mean_abs", {"batch": FREE}),  # it reads the batch
        ("effective_rank", {"batch": MEAN}),  # a half's rank is not half the rank
        ("effective_rank", {"rtol64": 1e-12}),  # float32 rounds the activations
    ],
)
def test_the_tester_catches_a_wrong_declaration(probe, change, monkeypatch):
    monkeypatch.setitem(CASES, probe, replace(CASES[probe], **change))
    t = probe_tester(probe)
    check = t.check_float64 if "rtol64" in change else t.check_batch
    with pytest.raises(AssertionError):
        check()
