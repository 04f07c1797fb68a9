"""Named activation sites (TransformerLens ``HookPoint`` style) and capturing them.

Every activation a probe may want passes through a :class:`HookPoint`, an identity module, so
it has a stable dotted name such as ``layers.0.hook_post``. :func:`capture` records the
activations at names matching glob patterns with forward hooks; the forward pass itself never
changes for a probe.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def double_backward(model: nn.Module) -> Iterator[None]:
    """Inside the block, every submodule with an ``explicit`` flag takes its explicit,
    twice-differentiable path (a GPT's attention: ``softmax(Q K^T / sqrt(d)) V`` with the
    causal mask, instead of ``F.scaled_dot_product_attention``, whose fused CPU kernel has no
    second derivative); the flags are restored after. For probes that differentiate twice
    (Hessian-vector products)."""
    flagged = [m for m in model.modules() if hasattr(m, "explicit")]
    before = [m.explicit for m in flagged]
    for m in flagged:
        m.explicit = True
    try:
        yield
    finally:
        for m, value in zip(flagged, before):
            m.explicit = value


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


@torch.no_grad()
def site_sizes(
    model: nn.Module, forward: Callable[[nn.Module, Any], Any], batch: Any
) -> dict[str, int]:
    """Size of the last dimension at every activation site (one ``forward(model, batch)`` pass
    in eval mode on a few examples) and the smaller side of every weight matrix, by name.

    For an attention pattern ``(b, head, query, key)`` that is the context length; for a hidden
    layer ``(b, width)`` or ``(b, T, d)`` its width. The rank and entropy collapse detectors of
    ``learnscope.events`` compare against these.

    >>> from learnscope.models.mlp import MLP, MLPConfig
    >>> net = MLP(MLPConfig(n_inputs=2, vocab=5, n_out=5, width=8, depth=2))
    >>> sizes = site_sizes(net, lambda m, x: m(x), torch.zeros(3, 2, dtype=torch.long))
    >>> sizes["layers.0.hook_post"], sizes["layers.0.linear.weight"]
    (8, 8)
    """
    sizes = {name: min(p.shape) for name, p in model.named_parameters() if p.dim() >= 2}
    names = hook_names(model)
    if not names:
        return sizes
    with eval_mode(model), capture(model, names) as acts:
        forward(model, batch)
    sizes.update({k: int(v.shape[-1]) for k, v in acts.items() if v.dim() >= 1})
    return sizes
