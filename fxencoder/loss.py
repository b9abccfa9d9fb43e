"""Losses of the encoder: multi-positive NT-Xent (SupCon) and the auxiliary parameter loss."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["aux_param_loss", "nt_xent", "similarity_stats"]


def nt_xent(z: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Normalized-temperature cross entropy with any number of positives per anchor.

    With unit vectors ``z_i`` and ``s_ij = z_i·z_j / τ``, for each anchor ``i`` with positives
    ``P(i) = {j ≠ i : y_j = y_i}``::

        ℓ_i = −(1/|P(i)|) Σ_{p∈P(i)} log( exp(s_ip) / Σ_{a≠i} exp(s_ia) )

    averaged over anchors with at least one positive (Khosla et al., NeurIPS 2020, "SupCon",
    L_out; with two views per label this is SimCLR's NT-Xent, Chen et al., ICML 2020). Here a
    label is a drawn effect chain: the views are the chain applied to different contents, and
    the same content under another chain is a (strong) negative.

    Args:
        z: ``(N, d)`` vectors (normalized here).
        labels: ``(N,)`` integer labels.
        temperature: ``τ > 0``.

    Returns:
        The scalar loss.

    Raises:
        ValueError: bad shapes, a non-positive temperature, or no anchor with a positive.
    """
    if z.ndim != 2 or labels.shape != (z.shape[0],):
        raise ValueError(
            f"need z (N, d) and labels (N,), got {tuple(z.shape)}, {tuple(labels.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = torch.nn.functional.normalize(z, dim=1)
    n = z.shape[0]
    logits = z @ z.T / temperature
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    count = positive.sum(dim=1)
    if not bool((count > 0).any()):
        raise ValueError("no anchor has a positive: every label appears once")
    pos_sum = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    has = count > 0
    return -(pos_sum[has] / count[has]).mean()


@torch.no_grad()
def similarity_stats(z: Tensor, labels: Tensor, contents: Tensor) -> dict[str, float]:
    """Mean cosine similarity of positives, of negatives, of strong negatives (same content,
    another chain), and in-batch top-1 accuracy (the nearest other item shares the label)."""
    z = torch.nn.functional.normalize(z.float(), dim=1)
    sim = z @ z.T
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    same = labels[:, None] == labels[None, :]
    same_content = contents[:, None] == contents[None, :]
    pos, neg = same & ~eye, ~same
    strong = ~same & same_content
    nearest = sim.masked_fill(eye, float("-inf")).argmax(dim=1)

    def mean(mask: Tensor) -> float:
        return float(sim[mask].mean()) if bool(mask.any()) else float("nan")

    return {
        "sim_positive": mean(pos),
        "sim_negative": mean(neg),
        "sim_strong_negative": mean(strong),
        "top1": float((labels[nearest] == labels).float().mean()),
    }


def aux_param_loss(pred: Tensor, params: Tensor, active: Tensor, param_effect: Tensor) -> Tensor:
    """Regression of the drawn chain's normalized parameters plus on/off classification.

    ``pred`` holds ``P`` parameter predictions then ``E`` on/off logits. The parameter error is
    the mean squared error over parameters whose effect is on (a parameter of an effect that
    is off has no audible value); the flags use binary cross entropy. Their sum is returned.

    Args:
        pred: ``(N, P + E)``.
        params: ``(N, P)`` targets in [0, 1].
        active: ``(N, E)`` bool, which effects are on.
        param_effect: ``(P,)`` int64, the effect (column of ``active``) of each parameter.
    """
    p = params.shape[1]
    mask = active[:, param_effect].to(pred.dtype)
    err = (pred[:, :p] - params.to(pred.dtype)).square() * mask
    reg = err.sum() / mask.sum().clamp_min(1.0)
    cls = torch.nn.functional.binary_cross_entropy_with_logits(pred[:, p:], active.to(pred.dtype))
    return reg + cls
