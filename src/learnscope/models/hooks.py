"""Named activation sites (TransformerLens ``HookPoint`` style) and capturing them.

Every activation a probe may want passes through a :class:`HookPoint`, an identity module, so
it has a stable dotted name such as ``layers.0.hook_post``. :func:`capture` records the
activations at names matching glob patterns with forward hooks; the forward pass itself never
changes for a probe.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from learnscope.errors import UserError


class HookPoint(nn.Module):
    """Identity; exists so that forward hooks can be attached to a named site."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def hook_names(model: nn.Module) -> list[str]:
    """Names of every :class:`HookPoint` in ``model``, in forward order of registration."""
    return [name for name, m in model.named_modules() if isinstance(m, HookPoint)]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block (no dropout, BatchNorm's running statistics),
    its mode restored after; a model already in eval mode is left alone (no module walk)."""
    if not model.training:
        yield
        return
    model.eval()
    try:
        yield
    finally:
        model.train()


def match_sites(model: nn.Module, patterns: list[str] | str) -> list[str]:
    """Hook names matching any glob in ``patterns``; an unmatched pattern is a UserError."""
    names = hook_names(model)
    patterns = [patterns] if isinstance(patterns, str) else patterns
    found: list[str] = []
    for pat in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            raise UserError(f"probes.sites: no activation site matches {pat!r}; sites: {names}")
        found += [h for h in hits if h not in found]
    return found


@contextmanager
def capture(
    model: nn.Module, patterns: list[str] | str, detach: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the hook points matching ``patterns`` while the block runs.

    >>> from learnscope.models.mlp import MLP, MLPConfig
    >>> net = MLP(MLPConfig(n_inputs=2, vocab=5, n_out=5, width=8, depth=3))
    >>> with capture(net, "layers.*.hook_post") as acts:
    ...     _ = net(torch.zeros(4, 2, dtype=torch.long))
    >>> {k: tuple(v.shape) for k, v in acts.items()}
    {'layers.0.hook_post': (4, 8), 'layers.1.hook_post': (4, 8)}
    """
    acts: dict[str, torch.Tensor] = {}
    handles = []
    for name in match_sites(model, patterns):

        def hook(_m, _inp, out, name=name):
            acts[name] = out.detach() if detach else out

        handles.append(model.get_submodule(name).register_forward_hook(hook))
    try:
        yield acts
    finally:
        for h in handles:
            h.remove()
