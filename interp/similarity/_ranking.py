"""Ranks from one sort, and Spearman's rho of two long vectors (RDM upper triangles) without a second scatter.

On the CPU a float32 vector is sorted as packed 64-bit keys (the value's order-preserving bits above its index):
numpy's vectorised integer sort orders those about 10x faster than an argsort of the floats, and the index comes
back in the low half. Elsewhere (float64, GPU, autograd) the order is a plain argsort.
"""
from __future__ import annotations

import numpy as np
import torch

_CHUNK = 1 << 22


def _packed_order(a: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(ascending order, starts-a-new-value mask over sorted positions) of a float32 array below 2**32 entries."""
    m = a.shape[0]
    key = np.empty(m, np.uint64)
    halves = key.view(np.uint32).reshape(m, 2)
    low, high = (0, 1) if np.little_endian else (1, 0)
    bits = (a + np.float32(0)).view(np.int32)  # + 0 turns -0.0 into +0.0, so the two tie
    # negative floats: flip every bit; non-negative: flip the sign bit; the unsigned order is then the float order
    np.bitwise_xor(bits, (bits >> 31) | np.int32(-2**31), out=halves[:, high].view(np.int32))
    halves[:, low] = np.arange(m, dtype=np.uint32)
    key.sort()
    new = np.empty(m, bool)
    new[:1] = True
    np.not_equal(halves[1:, high], halves[:-1, high], out=new[1:])
    return torch.from_numpy(halves[:, low].astype(np.int64)), torch.from_numpy(new)


def sort_order(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ascending order as int64 indices, mask of the sorted positions that start a new value) of a 1-D tensor.

    Parameters
    ----------
    v : torch.Tensor
        1-D finite values.
    """
    m = v.numel()
    if v.device.type == "cpu" and not v.requires_grad and v.dtype == torch.float32 and m < 2**32:
        return _packed_order(v.contiguous().numpy())
    order = torch.from_numpy(np.argsort(v.numpy())) if v.device.type == "cpu" and not v.requires_grad \
        else torch.argsort(v)
    s = v[order]
    new = torch.ones(m, dtype=torch.bool, device=v.device)
    torch.ne(s[1:], s[:-1], out=new[1:])
    return order, new


def doubled_sorted_ranks(new: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(twice the average 1-based rank at each sorted position, whether there are ties), as exact integers.

    A run of equal values over sorted positions ``[start, end)`` has average rank ``(start + 1 + end) / 2``;
    doubling keeps it an integer (int32 below 2**30 entries).
    """
    m = new.numel()
    dtype = torch.int32 if 2 * m + 1 < 2**31 else torch.int64
    if bool(new.all()):
        return torch.arange(2, 2 * m + 1, 2, dtype=dtype, device=new.device), False
    starts = torch.nonzero(new)[:, 0]
    ends = torch.cat([starts[1:], torch.tensor([m], device=new.device)])
    return torch.repeat_interleave((starts + 1 + ends).to(dtype), ends - starts), True


def ranks(v: torch.Tensor, dtype: torch.dtype, integers: bool = False) -> tuple[torch.Tensor, bool]:
    """(1-based ranks with ties averaged, whether ``v`` has ties) of a 1-D tensor, from one sort.

    Without ties and with ``integers=True`` the ranks come back as int32/int64 (exact at any length).

    Parameters
    ----------
    v : torch.Tensor
        1-D finite values.
    dtype : torch.dtype
        The floating dtype of the ranks.
    integers : bool
        Return integer ranks when there are no ties.
    """
    order, new = sort_order(v)
    doubled, tied = doubled_sorted_ranks(new)
    r = torch.empty_like(doubled).scatter_(0, order, doubled)
    if integers and not tied:
        return r.div_(2, rounding_mode="floor"), False
    return r.to(dtype).div_(2), tied


def _centred_sums(a: torch.Tensor, b: torch.Tensor, centre: float) -> tuple[float, float, float]:
    """(sum (a-c)(b-c), sum (a-c)^2, sum (b-c)^2) in float64, over chunks (no float64 copy of a whole vector)."""
    sab = saa = sbb = 0.0
    for s in range(0, a.numel(), _CHUNK):
        x = a[s:s + _CHUNK].to(torch.float64) - centre
        y = b[s:s + _CHUNK].to(torch.float64) - centre
        sab += float(torch.dot(x, y))
        saa += float(torch.dot(x, x))
        sbb += float(torch.dot(y, y))
    return sab, saa, sbb


def spearman_pair(v1: torch.Tensor, v2: torch.Tensor) -> float:
    """Spearman's rho of two equal-length 1-D tensors: the Pearson correlation of their average ranks.

    One sort each, one scatter (``v1``'s ranks into input order) and one gather (those ranks in ``v2``'s sorted
    order, where ``v2``'s own ranks are already known), on doubled ranks held as exact integers. Without ties,
    ``1 - 6 sum d^2 / (m (m^2 - 1))`` (Spearman 1904); with ties, the Pearson form centred on the known mean rank.

    Parameters
    ----------
    v1, v2 : torch.Tensor
        1-D finite values of the same length.
    """
    m = v1.numel()
    order1, new1 = sort_order(v1)
    sorted1, tied1 = doubled_sorted_ranks(new1)
    r1 = torch.empty_like(sorted1).scatter_(0, order1, sorted1)
    del order1, new1
    order2, new2 = sort_order(v2)
    sorted2, tied2 = doubled_sorted_ranks(new2)
    aligned1 = torch.index_select(r1, 0, order2)
    del r1, order2, new2
    if not (tied1 or tied2):
        total = 0.0
        for s in range(0, m, _CHUNK):
            d = (aligned1[s:s + _CHUNK] - sorted2[s:s + _CHUNK]).to(torch.float64)
            total += float(torch.dot(d, d))
        return 1.0 - 6.0 * (total / 4) / (m * (float(m) ** 2 - 1))
    sxy, _, syy = _centred_sums(aligned1, sorted2, m + 1.0)
    _, sxx, _ = _centred_sums(sorted1, sorted1, m + 1.0)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else 0.0
