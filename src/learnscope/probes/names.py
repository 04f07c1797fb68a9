"""The names of the probes a run can record, without torch: what ``config`` checks a
``probes:`` entry against and what ``show`` and the live view read a metric name by. The
registry (:mod:`learnscope.probes.registry`, which holds the probes themselves) defines
exactly these; a test keeps the two equal."""

from __future__ import annotations

#: every probe of the registry, in its order
PROBE_NAMES: tuple[str, ...] = (
    "effective_rank", "rankme", "matrix_entropy", "lidar", "mmcr", "attention_entropy", "sas",
    "local_rank", "partial_jacobian_norm", "incremental_rank", "ipr", "fourier_power", "nc1",
    "ncc_accuracy", "angular_distance", "layer_distances", "weight_norms",
    "hessian_top_eigenvalue", "hessian_spectrum", "ntk_distance", "mean_abs", "softmax_collapse",
    "irrep_power", "examples", "dormant_units",
)  # fmt: skip

#: First components of every metric name the probes write.
PROBE_METRICS: frozenset[str] = frozenset(PROBE_NAMES) | {"ipr_mean", "ipr_frac"}

#: First components of the metrics the trainer logs beside the ``{split}/...`` ones.
TRAINER_METRICS: frozenset[str] = frozenset({"lr", "weight_norm", "reg", "train_step"})


def is_probe_metric(name: str) -> bool:
    """Whether a metric name is a probe series (``effective_rank/layers.0.hook_post``).

    >>> is_probe_metric("effective_rank/layers.0.hook_post"), is_probe_metric("test/acc")
    (True, False)
    """
    return name.split("/")[0] in PROBE_METRICS
