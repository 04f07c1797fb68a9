"""Probes: pure functions on tensors that measure what a network represents.

Each is documented with its formula and paper and tested on closed-form cases.
:mod:`learnscope.probes.registry` names the ones a run can record (what they read, their
options, the defaults per model kind) and :mod:`learnscope.probes.plan` resolves a run's
``probes:`` entries against a model and computes them on the probe batch; the trainer callback
that records them during training is ``learnscope.train.callbacks.ProbeRecorder``. This
package imports nothing from ``train``, ``store``, ``runner``, ``sweep`` or ``config``.
"""

from learnscope.probes.attention import attention_entropy
from learnscope.probes.collapse import nc1, ncc_accuracy
from learnscope.probes.distance import angular_distance, layer_distances
from learnscope.probes.jacobian import hessian_top_eigenvalue, local_rank, partial_jacobian_norm
from learnscope.probes.rank import (
    effective_rank,
    incremental_rank,
    lidar,
    matrix_entropy,
    mmcr,
    rankme,
)
from learnscope.probes.spectral import fourier_power, ipr, neuron_ipr, residue_blocks
from learnscope.probes.weights import weight_norms

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
