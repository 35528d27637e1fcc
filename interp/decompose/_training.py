"""The SAE training loop: one pass over the data feeds one or several SAEs, on one process or several ranks.

:func:`train` is the front door (``torchrun ... -m interp decompose`` calls it); :func:`fit_saes` is the
loop that ``SparseAutoencoder.fit`` also runs. Distributed layouts are described in
:mod:`interp.decompose._distributed`. A distributed fit equals one process's fit on the same global
batches because every step is the single-process step written as sums over rows:

* every rank draws the same global minibatch order from ``seed`` and takes its slice
  (:func:`interp.decompose._data.rank_slice`);
* losses are sums over this rank's rows divided by the rows of the *global* batch; gradients, the
  dead-latent "fired" mask and the logged statistics travel in one summed buffer per step;
* the first batch's moments (input scale, ``b_dec`` init) are summed across ranks before the init.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from interp._progress import tqdm

from ..errors import ConfigError, DimensionError
from ._base import check_int, registry
from ._data import BatchSource, is_store, store_array
from ._distributed import Parallel, resolve_parallel

__all__ = ["train", "fit_saes", "KINDS"]

KINDS = {"relu": "ReLUSAE", "topk": "TopKSAE", "batchtopk": "BatchTopKSAE", "jumprelu": "JumpReLUSAE"}
_SHARED = ("batch_size", "n_epochs", "seed", "max_samples", "max_seconds")


def train(data: Any, kind: str = "topk", *, sites: str | Sequence[str] | None = None,
          n_components: int | Sequence[int] = 1024, distributed: bool | None = None, shard_latents: bool = False,
          **params: Any) -> dict[tuple[str | None, int], Any]:
    """Train one SAE per (site, width) from one pass over ``data``; returns ``{(site, n_components): sae}``.

    ``data``: an ActivationStore (``sites`` name its arrays), a mapping ``{site: Activations/tensor/array}``
    with equal rows, one Activations/tensor/array (``sites=None``), or an iterable of minibatches. ``kind``:
    ``"relu"``, ``"topk"``, ``"batchtopk"`` or ``"jumprelu"``; ``params`` go to every estimator (``k``, ``lr``,
    ``batch_size``, ``n_epochs``, ``seed``, ...). Each SAE sees exactly the batches its own ``fit``
    would see, so the result equals separate fits (as SAELens and sparsify train several SAEs from one
    forward pass). ``distributed`` and ``shard_latents`` are as in :meth:`SparseAutoencoder.fit`; launch
    with ``torchrun --nproc-per-node N``.

    >>> saes = train(store, "topk", sites=["blocks.2.hook_resid_post", "blocks.4.hook_resid_post"],
    ...              n_components=[2048, 8192], k=32, batch_size=4096)             # doctest: +SKIP
    >>> saes["blocks.2.hook_resid_post", 8192].save("sae.safetensors")            # doctest: +SKIP
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown SAE kind {kind!r}; choose from {sorted(KINDS)}")
    cls = registry()[KINDS[kind]]
    if sites is None:
        site_list: list[str | None] = list(data) if isinstance(data, dict) else [None]
    else:
        site_list = [sites] if isinstance(sites, str) else list(sites)
    if is_store(data):
        site_list = [store_array(data, s)[1] for s in site_list]
    widths = [n_components] if isinstance(n_components, int) else list(n_components)
    if not site_list or not widths:
        raise ConfigError("train needs at least one site and one width")
    valid = cls._param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"{cls.__name__} has no parameter(s) {unknown}; parameters are {valid}")
    pairs = [(cls(width, **params), site) for site in site_list for width in widths]
    fit_saes(pairs, data, distributed=distributed, shard_latents=shard_latents)
    return {(site, sae.n_components): sae for sae, site in pairs}


def fit_saes(pairs: Sequence[tuple[Any, str | None]], X: Any, *, distributed: bool | None = None,
             shard_latents: bool = False) -> list[Any]:
    """Train every ``(sae, site)`` pair from one pass over ``X`` (see :func:`train`); returns the SAEs."""
    if not pairs:
        raise ConfigError("fit_saes needs at least one (sae, site) pair")
    first = pairs[0][0]
    for sae, _ in pairs:
        check_int("batch_size", sae.batch_size)
        check_int("n_epochs", sae.n_epochs)
        differ = [name for name in _SHARED if getattr(sae, name) != getattr(first, name)]
        if differ:
            raise ConfigError(f"SAEs trained from one pass must share {list(_SHARED)}; these differ: {differ}")
    par = resolve_parallel(distributed, shard_latents)
    if is_store(X):
        pairs = [(sae, store_array(X, site)[1]) for sae, site in pairs]
    sites = list(dict.fromkeys(site for _, site in pairs))
    devices = {par.device(sae.device) for sae, _ in pairs}
    source = BatchSource(X, sites, first.batch_size, first.n_epochs, seed=first.seed or 0,
                         device=next(iter(devices)) if len(devices) == 1 else None)
    plans = []
    for sae, site in pairs:
        n = source.n_vectors(site)
        total_rows = n * sae.n_epochs if n is not None else None
        if sae.max_samples is not None:
            total_rows = min(total_rows, sae.max_samples) if total_rows else sae.max_samples
        steps = math.ceil(total_rows / source.vectors_per_batch(site)) if total_rows else None
        sae.__dict__.pop("components_", None)
        sae.__dict__.pop("_optimizer", None)
        plans.append({"sae": sae, "site": site, "steps": steps, "ema": None, "done": False,
                      "device": par.device(sae.device)})
    n_total = plans[0]["steps"] and plans[0]["steps"] * source.vectors_per_batch(sites[0])
    bar = tqdm(total=n_total, desc=type(first).__name__, unit="row", unit_scale=True, leave=False,
               disable=not (first.progress and par.rank == 0))
    started = time.perf_counter()
    for local, counts in source.batches(par.rank, par.world_size):
        gathered: dict = {}
        for plan in plans:
            if not plan["done"]:
                _step_plan(plan, local, counts, gathered, par)
        bar.update(counts[sites[0]])
        if all(p["done"] for p in plans):
            break
        if first.max_seconds is not None:
            late = torch.tensor([float(time.perf_counter() - started > first.max_seconds)], device=plans[0]["device"])
            if par.all_reduce_(late, "max").item() > 0:
                break
    bar.close()
    for plan in plans:
        sae = plan["sae"]
        if not hasattr(sae, "components_"):
            raise DimensionError("no training rows: the input yielded no minibatches")
        sae.distributed_ = _memory_report(sae, par)
        if par.sharded:
            for name, dim in sae._latent_attrs.items():
                setattr(sae, name, par.gather_cat(getattr(sae, name).detach(), dim))
            del sae._optimizer  # it held this rank's shard; partial_fit starts a fresh one
        sae.fit_seconds_ = time.perf_counter() - started
        sae.feature_names_in_ = source.names.get(plan["site"])
        sae._finish()
    return [plan["sae"] for plan in plans]


def _step_plan(plan: dict, local: dict, counts: dict, gathered: dict, par: Parallel) -> None:
    sae, site = plan["sae"], plan["site"]
    key = (site, plan["device"], sae.dtype)
    if key not in gathered:
        x = local[site].to(device=plan["device"], dtype=sae.dtype)
        gathered[key] = torch.cat(par.all_gather(x)) if par.sharded else x  # sharded: every rank sees every row
    x = gathered[key]
    if not hasattr(sae, "components_"):
        sae._init_state(batch_moments(x, par), par, plan["device"])
    elif x.shape[1] != sae.n_features_in_:
        raise DimensionError(f"minibatch has {x.shape[1]} features, expected {sae.n_features_in_}")
    l0, fvu = train_step(sae, x, counts[site], plan["steps"], par)
    previous = plan["ema"]
    if previous is not None:  # a batch of one row has no variance (FVU NaN): it leaves the running FVU alone
        l0 = 0.95 * previous[0] + 0.05 * l0
        fvu = previous[1] if math.isnan(fvu) else (fvu if math.isnan(previous[1]) else 0.95 * previous[1] + 0.05 * fvu)
    ema = plan["ema"] = (l0, fvu)
    if sae.n_steps_ % 10 == 0:
        sae.history_.append({"step": sae.n_steps_, "samples": sae.n_samples_seen_, "l0": ema[0], "fvu": ema[1]})
    if sae.max_samples is not None and sae.n_samples_seen_ >= sae.max_samples:
        plan["done"] = True


def partial_fit_steps(sae: Any, X: Any) -> None:
    """One optimiser step per minibatch of ``X`` on this process (what ``partial_fit`` runs)."""
    site = store_array(X)[1] if is_store(X) else None
    par = Parallel()
    device = par.device(sae.device)
    for local, counts in BatchSource(X, [site], sae.batch_size, 1, seed=sae.seed or 0).batches():
        x = local[site].to(device=device, dtype=sae.dtype)
        if not hasattr(sae, "components_"):
            sae._init_state(batch_moments(x, par), par, device)
        elif x.shape[1] != sae.n_features_in_:
            raise DimensionError(f"X has {x.shape[1]} features, but {type(sae).__name__} is expecting "
                                 f"{sae.n_features_in_} features as input (the number it was trained on)")
        elif not hasattr(sae, "_optimizer") or not sae.components_.requires_grad:  # loaded, or fitted and frozen
            sae._resume_training()
        train_step(sae, x, counts[site], None, par)


def batch_moments(x: torch.Tensor, par: Parallel = Parallel()) -> tuple[float, torch.Tensor, float]:
    """``(rows, sum of rows, sum of squared norms)`` of the global batch (float64), summed across data-parallel ranks."""
    xd = x.detach().double()
    packed = torch.cat([xd.new_tensor([x.shape[0]]), xd.sum(0), (xd ** 2).sum().reshape(1)])
    if par.data_parallel:
        par.all_reduce_(packed)
    return float(packed[0]), packed[1:-1], float(packed[-1])


def train_step(sae: Any, x: torch.Tensor, n: int, total_steps: int | None, par: Parallel) -> tuple[float, float]:
    """One optimiser step on the global batch of ``n`` rows, of which ``x`` are this process's; returns (L0, FVU)."""
    for group in sae._optimizer.param_groups:
        group["lr"] = sae._lr_at(sae.n_steps_, total_steps)
    sae._total_steps = total_steps
    fraction = sae.n_steps_ / total_steps if total_steps else 1.0
    xs, x_hat, extra, stats = sae._train_forward(x, fraction, n, par)
    sq = torch.nn.functional.mse_loss(x_hat, xs, reduction="sum")  # one fused kernel each way
    loss = sq / n + extra
    sae._optimizer.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        xd = xs.detach()
        row_stats = torch.cat([sq.detach().double().reshape(1), xd.sum(0, dtype=torch.float64),
                               torch.linalg.vecdot(xd.reshape(-1), xd.reshape(-1)).double().reshape(1)])
        fired, active, row_stats = _synchronise(sae, par, stats["fired"], stats["active"], row_stats)
        W, g = sae.components_, sae.components_.grad
        if g is not None:  # keep the update tangent to the unit sphere of each decoder row (one pass over g)
            g.addcmul_(torch.linalg.vecdot(g, W).unsqueeze(1), W, value=-1)
        grads_in_param_layout(sae._parameters())
    sae._optimizer.step()
    with torch.no_grad():
        sae.components_ /= sae.components_.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sae._samples_since_fired += n
        sae._samples_since_fired[fired] = 0
        sae.n_steps_ += 1
        sae.n_samples_seen_ += n
        sae._after_step(xs, x_hat.detach(), stats, par)
    sq, total, sumsq = float(row_stats[0]), row_stats[1:-1], float(row_stats[-1])
    total_var = (sumsq - float((total ** 2).sum()) / n) / n
    return float(active) / n, (sq / n) / total_var if total_var > 0 else float("nan")


def grads_in_param_layout(params: Sequence[torch.Tensor]) -> None:
    """Give every gradient its parameter's memory layout (strides), copying only where they differ.

    torch's fused CPU Adam walks parameter, gradient and moments in memory order: a gradient laid out
    differently from its parameter (a row-major gradient of the column-major ``W_enc_``) is silently
    applied to the wrong elements (torch 2.13, measured). Autograd's accumulation already matches
    layouts; this guards gradients set by hand.

    Parameters
    ----------
    params : sequence of torch.Tensor
        The optimised parameters.
    """
    for p in params:
        g = p.grad
        if g is not None and g.stride() != p.stride():
            p.grad = torch.empty_like(p).copy_(g)  # empty_like keeps p's strides


def _synchronise(sae: Any, par: Parallel, fired: torch.Tensor, active: torch.Tensor,
                 row_stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sum, in one buffer, what each rank holds a part of: gradients, the fired mask, L0 and the FVU sums.

    Data parallel: every parameter's gradient and every statistic is a sum over rows. Latents sharded:
    only the replicated ``b_dec_`` has a partial gradient; ``fired`` is local; the row statistics are the
    same on every rank, so rank 0 alone contributes them.
    """
    if not par.active:
        return fired, active, row_stats
    params = sae._parameters() if par.data_parallel else [sae.b_dec_]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if par.sharded and par.rank != 0:
        row_stats = torch.zeros_like(row_stats)
    dtype = torch.promote_types(params[0].grad.dtype, torch.float32)  # counts and sums stay exact in bf16 training
    parts = [p.grad.reshape(-1) for p in params] + [active.to(dtype).reshape(1), row_stats.to(dtype)]
    if par.data_parallel:
        parts.append(fired.to(dtype))
    flat = par.all_reduce_(torch.cat(parts))
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    active = flat[offset]
    row_stats = flat[offset + 1:offset + 1 + row_stats.numel()].double()
    if par.data_parallel:
        fired = flat[offset + 1 + row_stats.numel():] > 0
    return fired, active, row_stats


def _memory_report(sae: Any, par: Parallel) -> dict[str, Any]:
    """Bytes of parameters + Adam state held by this rank, and what one unsharded process holds."""
    m_local = sae.components_.shape[0]
    here = full = 0
    for p in sae._parameters():
        n_bytes = p.numel() * p.element_size()
        state = sum(t.numel() * t.element_size() for t in sae._optimizer.state_of(p)[0].values()
                    if isinstance(t, torch.Tensor) and t.ndim > 0)
        latent = p is not sae.b_dec_ and par.sharded
        here += n_bytes + state
        full += (n_bytes + state) * (sae.n_components // m_local if latent else 1)
    return {"world_size": par.world_size, "shard_latents": par.sharded, "param_bytes_per_rank": int(here),
            "param_bytes_unsharded": int(full)}
