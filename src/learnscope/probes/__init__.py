"""Probes: pure functions on tensors that measure what a network represents.

Each is documented with its formula and paper and tested on closed-form cases.
:mod:`learnscope.probes.registry` names the ones a run can record (what they read, their
options, the defaults per model kind) and :mod:`learnscope.probes.plan` resolves a run's
``probes:`` entries against a model and computes them on the probe batch; the trainer callback
that records them during training is ``learnscope.train.callbacks.ProbeRecorder``. This
package imports nothing from ``train``, ``store``, ``runner``, ``sweep`` or ``config``.
"""

from learnscope.lazy import exports

_WHERE = {
    "attention": ["attention_entropy"],
    "collapse": ["nc1", "ncc_accuracy"],
    "distance": ["angular_distance", "layer_distances"],
    "jacobian": ["hessian_top_eigenvalue", "local_rank", "partial_jacobian_norm"],
    "rank": ["effective_rank", "incremental_rank", "lidar", "matrix_entropy", "mmcr", "rankme"],
    "spectral": ["fourier_power", "ipr", "neuron_ipr", "residue_blocks"],
    "weights": ["weight_norms"],
}
# torch on first use: the probes' names (learnscope.probes.names) are read without it
__getattr__, __dir__ = exports(
    __name__, {n: f"learnscope.probes.{m}" for m, names in _WHERE.items() for n in names}
)

__all__ = [
    "angular_distance",
    "attention_entropy",
    "effective_rank",
    "fourier_power",
    "hessian_top_eigenvalue",
    "incremental_rank",
    "ipr",
    "layer_distances",
    "lidar",
    "local_rank",
    "matrix_entropy",
    "mmcr",
    "nc1",
    "ncc_accuracy",
    "neuron_ipr",
    "partial_jacobian_norm",
    "rankme",
    "residue_blocks",
    "weight_norms",
]
