"""Autograd functions of the SAE training passes: a sparse encoder gradient, a sparse decode, JumpReLU's
straight-through estimators (Rajamanoharan et al. 2024, "Jumping Ahead")."""

from __future__ import annotations

import torch

__all__ = ["GatherEncode", "decode_pairs", "Step", "JumpReLU"]


class GatherEncode(torch.autograd.Function):
    """Selected pre-activations ``pre[rows, lats]`` of ``(xs - b_dec) @ W_enc + b_enc`` with a sparse backward.

    The forward takes the values already computed (without grad) by the dense selection pass; the
    backward gives ``W_enc``, ``b_enc`` and ``b_dec`` their exact gradients in O(pairs x n_features).
    """

    @staticmethod
    def forward(ctx, values, W_enc, b_enc, b_dec, xc, rows, lats):
        ctx.save_for_backward(W_enc, xc, rows, lats)
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        W_enc, xc, rows, lats = ctx.saved_tensors
        m = W_enc.shape[1]
        G = torch.sparse_coo_tensor(torch.stack([lats, rows]), grad, (m, xc.shape[0]), check_invariants=False)
        grad_W_enc = torch.sparse.mm(G, xc).T
        grad_b_enc = torch.zeros(m, dtype=grad.dtype, device=grad.device).index_add_(0, lats, grad)
        grad_b_dec = -(W_enc @ grad_b_enc)
        return None, grad_W_enc, grad_b_enc, grad_b_dec, None, None, None


def decode_pairs(W_dec: torch.Tensor, rows: torch.Tensor, lats: torch.Tensor, values: torch.Tensor,
                 n_rows: int) -> torch.Tensor:
    """``sum_p values[p] * W_dec[lats[p]]`` into row ``rows[p]`` (pairs sorted by row)."""
    counts = torch.bincount(rows, minlength=n_rows)
    offsets = torch.cumsum(counts, 0) - counts
    return torch.nn.functional.embedding_bag(lats, W_dec, offsets, mode="sum", per_sample_weights=values)


class Step(torch.autograd.Function):
    """Heaviside step ``H(z - theta)`` with a rectangle-kernel pseudo-derivative for ``theta``."""

    @staticmethod
    def forward(ctx, z, theta, bandwidth):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        kernel = ((z - theta).abs() < bw / 2).to(z) / bw
        return torch.zeros_like(z), (-kernel * grad).sum(0), None


class JumpReLU(torch.autograd.Function):
    """``z * H(z - theta)``: gradient to ``z`` where active, pseudo-derivative to ``theta``."""

    @staticmethod
    def forward(ctx, z, theta, bandwidth):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        kernel = ((z - theta).abs() < bw / 2).to(z) / bw
        return (z > theta).to(z) * grad, (-(theta * kernel) * grad).sum(0), None
