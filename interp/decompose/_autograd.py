"""Autograd functions of the SAE training passes: a sparse encoder gradient, a sparse decode, JumpReLU's
straight-through estimators (Rajamanoharan et al. 2024, "Jumping Ahead").

The sparse pass (TopK and BatchTopK, Gao et al. 2024, "Scaling and evaluating sparse autoencoders") works
on the ``P`` active (row, latent) pairs of a batch. Every product costs O(P x n_features) instead of the
dense O(rows x latents x n_features), and none copies a (latents x features) matrix:

* the decode is a weighted segment sum of decoder rows (``embedding_bag`` over the row-major pairs);
* the gradient of the pair values is the decoder-gradient product sampled at the pairs (SDDMM,
  ``torch.sparse.sampled_addmm`` on the latent-major CSR pattern, float32/float64; a gather elsewhere);
* the decoder gradient and the (transposed) encoder gradient are weighted segment sums over the
  latent-major pairs (``embedding_bag`` again), written straight in the layout of the parameter
  (``W_enc_`` is stored column-major, so its gradient is the transpose of a row-major (latents x features)
  sum). :class:`Pairs` sorts the pairs by latent once per step for all of these.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

__all__ = ["Pairs", "GatherEncode", "DecodePairs", "decode_pairs", "Step", "JumpReLU"]

_SDDMM_DTYPES = (torch.float32, torch.float64)


def _pointers(index: torch.Tensor, n: int) -> torch.Tensor:
    """CSR row pointers of ``index`` (sorted) over ``n`` compressed rows."""
    crow = torch.zeros(n + 1, dtype=torch.long, device=index.device)
    torch.cumsum(torch.bincount(index, minlength=n), 0, out=crow[1:])
    return crow


class Pairs:
    """The active (row, latent) pairs of a batch, sorted by row (latents ascending within a row), with their
    latent-major order: the layout of the decode (row-major) and of the parameter gradients (latent-major).

    Parameters
    ----------
    rows, lats : torch.Tensor
        Row and latent index of each pair (int64), sorted by row.
    n_rows, n_latents : int
        Rows of the batch and latents held by this process.
    """

    def __init__(self, rows: torch.Tensor, lats: torch.Tensor, n_rows: int, n_latents: int) -> None:
        self.rows, self.lats, self.n_rows, self.n_latents = rows, lats, n_rows, n_latents
        self.row_crow = _pointers(rows, n_rows)
        self.order = torch.argsort(lats, stable=True)
        self.lat_crow = _pointers(lats[self.order], n_latents)
        self.lat_rows = rows[self.order]

    def row_sum(self, table: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``out[r] = sum over pairs p of row r of values[p] * table[lats[p]]`` (rows x table columns)."""
        return F.embedding_bag(self.lats, table, self.row_crow[:-1], mode="sum", per_sample_weights=values)

    def latent_sum(self, table: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``out[l] = sum over pairs p of latent l of values[p] * table[rows[p]]`` (latents x table columns)."""
        return F.embedding_bag(self.lat_rows, table, self.lat_crow[:-1], mode="sum",
                               per_sample_weights=values[self.order])

    def sampled_dot(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a[rows[p]] . b[lats[p]]`` for every pair ``p`` (row-major order)."""
        if a.dtype in _SDDMM_DTYPES:
            with warnings.catch_warnings():  # "sparse CSR support is in beta"; the invariants hold by construction
                warnings.simplefilter("ignore")
                pattern = torch.sparse_csr_tensor(self.lat_crow, self.lat_rows, a.new_ones(self.rows.numel()),
                                                  (self.n_latents, self.n_rows), check_invariants=False)
                by_latent = torch.sparse.sampled_addmm(pattern, b, a.T, beta=0.0).values()
            return torch.empty_like(by_latent).index_put_((self.order,), by_latent)
        out = a.new_empty(self.rows.numel())
        for s in range(0, out.numel(), 4096):  # a gather in chunks (bounded memory) where SDDMM has no kernel
            sl = slice(s, s + 4096)
            out[sl] = (a[self.rows[sl]] * b[self.lats[sl]]).sum(1)
        return out


class GatherEncode(torch.autograd.Function):
    """Selected pre-activations ``pre[rows, lats]`` of ``(xs - b_dec) @ W_enc + b_enc`` with a sparse backward.

    The forward takes the values already computed (without grad) by the dense selection pass; the
    backward gives ``W_enc``, ``b_enc`` and ``b_dec`` their exact gradients in O(pairs x n_features):
    ``grad W_enc = xc^T @ G`` with ``G`` the (rows x latents) sparse gradient, formed latent-major.
    """

    @staticmethod
    def forward(ctx, values, W_enc, b_enc, b_dec, xc, pairs):
        ctx.save_for_backward(W_enc, xc)
        ctx.pairs = pairs
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        W_enc, xc = ctx.saved_tensors
        p: Pairs = ctx.pairs
        grad_W_enc = p.latent_sum(xc, grad).T  # (features x latents), column-major like W_enc_
        if grad_W_enc.stride() != W_enc.stride():
            grad_W_enc = grad_W_enc.contiguous() if W_enc.is_contiguous() else grad_W_enc
        grad_b_enc = torch.zeros(W_enc.shape[1], dtype=grad.dtype, device=grad.device).index_add_(0, p.lats, grad)
        grad_b_dec = -(W_enc @ grad_b_enc)
        return None, grad_W_enc, grad_b_enc, grad_b_dec, None, None


class DecodePairs(torch.autograd.Function):
    """``out[r] = sum over pairs p of row r of values[p] * W_dec[lats[p]]`` with a sparse backward.

    Backward: ``grad values[p] = grad[rows[p]] . W_dec[lats[p]]`` (only at the pairs) and ``grad W_dec[l] =
    sum over pairs p of latent l of values[p] * grad[rows[p]]`` (rows of latents with no pair stay zero).
    """

    @staticmethod
    def forward(ctx, values, W_dec, pairs):
        ctx.save_for_backward(values, W_dec)
        ctx.pairs = pairs
        return pairs.row_sum(W_dec, values)

    @staticmethod
    def backward(ctx, grad):
        values, W_dec = ctx.saved_tensors
        p: Pairs = ctx.pairs
        grad = grad.contiguous()
        return p.sampled_dot(grad, W_dec), p.latent_sum(grad, values), None


def decode_pairs(W_dec: torch.Tensor, pairs: Pairs, values: torch.Tensor) -> torch.Tensor:
    """``sum_p values[p] * W_dec[lats[p]]`` into row ``rows[p]`` (:class:`DecodePairs`).

    Parameters
    ----------
    W_dec : torch.Tensor
        The decoder (latents x features).
    pairs : Pairs
        The active pairs.
    values : torch.Tensor
        One code per pair (row-major order).
    """
    return DecodePairs.apply(values, W_dec, pairs)


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
