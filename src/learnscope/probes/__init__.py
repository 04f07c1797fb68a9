"""Probes: pure functions on tensors that measure what a network represents."""

from learnscope.probes.weights import weight_norms

__all__ = ["weight_norms"]
