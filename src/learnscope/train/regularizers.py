"""Variance-covariance regularisers on hidden representations: Seq-VCR and VCR.

Seq-VCR (Arefin et al. 2024, "Seq-VCR: Preventing Collapse in Intermediate Transformer
Representations for Enhanced Reasoning"): hidden states ``H: (b, t, d)`` of a chosen layer are
projected to ``d'`` (a linear map without bias, Xavier-initialised, trained with the model; or
no projector), and for each position ``t`` the covariance over the batch is
``C_t = 1/(b-1) sum_i (z_it - mean_t)(z_it - mean_t)^T``. Then

    L_var = mean over t and k of max(0, 1 - sqrt(C_t[k, k] + eps))
    L_cov = mean over t of sum_{i != j} C_t[i, j]^2 / d'
    loss  = CE + lambda_var L_var + lambda_cov L_cov

VCR (Zhu et al. 2023, "Variance-Covariance Regularization Improves Representation Learning"):
the same two terms on representations ``z: (b, d)`` without a position axis; a site with a
position axis ``(b, t, d)`` has its chosen positions folded into the batch, ``(b * t, d)``.

SAS suppression (Chen et al. 2024, "Sudden drops in the loss: syntax acquisition, phase
transitions, and simplicity bias in MLMs"): on attention patterns ``A_l: (b, h, T, T)`` and the
batch's dependency ``parents: (b, T)``, for every edge ``(i, p(i))`` (both directions, the
paper's syntactically linked pairs) the strongest head's weight ``max_h A_l,h[i, p(i)]``,

    L_sas = mean over layers l and edges (i -> j, either direction) of max_h A_l,h[i, j]
    loss  = MLM + lambda_sas L_sas     for steps < until_step, then the MLM loss alone

``lambda_sas > 0`` suppresses syntactic attention structure (the paper's SAS-), ``< 0``
promotes it (SAS+). The raw term is reported as ``reg/sas`` at every step, also after release.

All are computed on activations captured with forward hooks during the training forward pass
(``learnscope.models.hooks.capture``), so the model's code is untouched. The raw (unweighted)
terms are reported as ``reg/seq_vcr_var``, ``reg/seq_vcr_cov``, ``reg/vcr_var``,
``reg/vcr_cov`` (summed over the chosen layers).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from learnscope.errors import UserError, shown
from learnscope.models.hooks import capture, eval_mode, match_sites


def variance_covariance(z: torch.Tensor, eps: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_var, L_cov)`` of ``z: (b, t, d)``, one covariance per position ``t`` over the batch.

    A whitened batch (``C_t = I``) gives ``L_var = L_cov = 0``; a collapsed one (every row the
    same, ``C_t = 0``) gives ``L_var = 1 - sqrt(eps)``:

    >>> z = torch.zeros(8, 3, 4)
    >>> [round(v.item(), 4) for v in variance_covariance(z, eps=1e-4)]
    [0.99, 0.0]
    """
    b, _, d = z.shape
    if b < 2:
        raise ValueError("the covariance over the batch needs a batch of at least 2 rows")
    zc = z - z.mean(dim=0, keepdim=True)
    cov = torch.einsum("bti,btj->tij", zc, zc) / (b - 1)  # (t, d, d)
    diag = torch.diagonal(cov, dim1=-2, dim2=-1)  # (t, d)
    l_var = F.relu(1 - torch.sqrt(diag + eps)).mean()
    l_cov = ((cov**2).sum(dim=(-2, -1)) - (diag**2).sum(-1)).mean() / d
    return l_var, l_cov


def check_positions(positions: list[int], t: int, site: str = "") -> None:
    """A :class:`UserError` unless every position indexes a sequence of length ``t``."""
    if any(not -t <= p < t for p in positions):
        at = f" at {site}" if site else ""
        raise UserError(
            f"train.regularizers.positions: {shown(positions)} out of range for sequences of "
            f"length {t}{at}; allowed: -{t}..{t - 1}"
        )


class VarianceCovarianceRegularizer(nn.Module):
    """One ``seq_vcr`` or ``vcr`` entry of ``train.regularizers`` (a ``RegularizerConfig``)."""

    def __init__(self, cfg, sites: list[str], dims: dict[str, int]) -> None:
        super().__init__()
        self.cfg, self.sites = cfg, sites
        self.projectors = nn.ModuleList()
        for site in sites:
            if cfg.proj_dim is None:
                self.projectors.append(nn.Identity())
            else:
                proj = nn.Linear(dims[site], cfg.proj_dim, bias=False)
                nn.init.xavier_uniform_(proj.weight)
                self.projectors.append(proj)

    def _positions(self, h: torch.Tensor) -> torch.Tensor:
        """``h: (b, t, d)`` restricted to the configured positions."""
        if self.cfg.positions == "all":
            return h
        check_positions(self.cfg.positions, h.shape[1])
        return h[:, list(self.cfg.positions)]

    def forward(self, acts: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        l_var = l_cov = 0.0
        for site, proj in zip(self.sites, self.projectors):
            h = acts[site].float()
            if h.dim() == 2:
                h = h[:, None]  # (b, 1, d)
            h = proj(self._positions(h))
            if self.cfg.kind == "vcr":
                h = h.reshape(-1, 1, h.shape[-1])  # positions folded into the batch
            var, cov = variance_covariance(h, self.cfg.eps)
            l_var, l_cov = l_var + var, l_cov + cov
        loss = self.cfg.lambda_var * l_var + self.cfg.lambda_cov * l_cov
        kind = self.cfg.kind
        return loss, {f"{kind}_var": l_var.detach(), f"{kind}_cov": l_cov.detach()}


def syntactic_attention(pattern: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
    """Mean over dependency edges, both directions, of the strongest head's attention weight
    along the edge: ``pattern: (b, h, T, T)``, ``parents: (b, T)`` (-1: no edge) -> scalar.

    >>> parents = torch.tensor([[1, -1]])
    >>> pattern = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]], [[1.0, 0.0], [1.0, 0.0]]]])
    >>> syntactic_attention(pattern, parents).item()  # (0 -> 1: 1.0, 1 -> 0: 1.0) / 2
    1.0
    """
    b, i = (parents >= 0).nonzero(as_tuple=True)
    j = parents[b, i]
    strongest = pattern.amax(1)  # (b, T, T)
    if not len(b):
        return pattern.sum() * 0.0
    return torch.cat([strongest[b, i, j], strongest[b, j, i]]).mean()


class SASRegularizer(nn.Module):
    """One ``sas`` entry of ``train.regularizers`` (see the module docstring)."""

    def __init__(self, cfg, sites: list[str]) -> None:
        super().__init__()
        self.cfg, self.sites = cfg, sites

    def forward(self, acts, batch, step: int) -> tuple[torch.Tensor, dict]:
        if batch is None or "parents" not in batch:
            raise UserError("train.regularizers: sas needs a task with dependency parents (pcfg)")
        term = torch.stack(
            [syntactic_attention(acts[s].float(), batch["parents"]) for s in self.sites]
        ).mean()
        on = self.cfg.until_step is None or step < self.cfg.until_step
        weight = self.cfg.lambda_sas if on else 0.0
        return weight * term, {"sas": term.detach()}


class Regularizers(nn.Module):
    """All configured regularisers; ``sites`` are the hook names to capture in training."""

    def __init__(self, cfgs: list, model: nn.Module, run_forward: Callable[[], object]) -> None:
        super().__init__()
        self.terms = nn.ModuleList()
        site_lists = [match_sites(model, list(c.layers)) for c in cfgs]
        self.sites = sorted({s for sites in site_lists for s in sites})
        dims: dict[str, int] = {}
        if self.sites:  # one forward pass (eval mode: no state changes) to learn the widths
            with torch.no_grad(), eval_mode(model), capture(model, self.sites) as acts:
                run_forward()
            dims = {s: a.shape[-1] for s, a in acts.items()}
            lengths = {s: a.shape[1] if a.dim() == 3 else 1 for s, a in acts.items()}
            for c, sites in zip(cfgs, site_lists):  # checked here, before anything trains
                if c.kind != "sas" and c.positions != "all":
                    for site in sites:
                        check_positions(c.positions, lengths[site], site)
        for c, sites in zip(cfgs, site_lists):
            if c.kind == "sas":
                bad = [s for s in sites if not s.endswith("hook_pattern")]
                if bad:
                    raise UserError(
                        f"train.regularizers.layers: sas reads attention patterns "
                        f"(*.attn.hook_pattern), not {bad[0]}"
                    )
                self.terms.append(SASRegularizer(c, sites))
            else:
                self.terms.append(VarianceCovarianceRegularizer(c, sites, dims))

    def forward(
        self, acts: dict[str, torch.Tensor], batch: dict | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict]:
        """Total weighted loss and the raw terms, detached (summed over entries of a kind);
        ``batch`` and ``step`` are the training batch and the number of updates so far."""
        total = torch.zeros(())
        logged: dict[str, torch.Tensor] = {}
        for term in self.terms:
            loss, parts = (
                term(acts, batch, step) if isinstance(term, SASRegularizer) else term(acts)
            )
            total = total.to(loss.device) + loss
            for k, v in parts.items():
                logged[k] = logged[k] + v if k in logged else v
        return total, logged
