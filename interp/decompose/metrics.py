"""Metrics of a decomposition: sparsity (L0), fraction of variance unexplained (FVU), dead and dense
latents, cosine of reconstruction; and for language models the CE loss recovered and KL divergence
when the reconstruction is spliced back into the forward pass through a hook.

FVU is ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over all evaluated rows (``1 - FVU`` is the
"explained variance" that SAELens reports). L0 is the mean number of non-zero codes per row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import engine
from ..errors import DimensionError, InputTypeError
from ..results import Result, themed


class ReconstructionAccumulator:
    """Streaming sums for L0, FVU, MSE, cosine and firing counts (float64 on CPU).

    Parameters
    ----------
    dense_threshold : float, optional
        Firing frequency above which a latent counts as dense (default 0.1).

    >>> acc = ReconstructionAccumulator()
    >>> acc.add(x, x_hat, codes)        # doctest: +SKIP
    >>> acc.result()                     # doctest: +SKIP
    """

    def __init__(self, dense_threshold: float = 0.1) -> None:
        self.dense_threshold = dense_threshold
        self.n = 0
        self.sum_x: torch.Tensor | None = None
        self.sum_sq = 0.0
        self.sum_residual = 0.0
        self.sum_l0 = 0.0
        self.sum_cos = 0.0
        self.fired: torch.Tensor | None = None

    @torch.no_grad()
    def add(self, x: torch.Tensor, x_hat: torch.Tensor, codes: torch.Tensor | None = None) -> None:
        """Add one batch of inputs, reconstructions and (optionally) codes, all with rows = samples.

        Parameters
        ----------
        x : torch.Tensor
            Inputs ``(n, d)``.
        x_hat : torch.Tensor
            Their reconstructions, the same shape.
        codes : torch.Tensor, optional
            The latent codes ``(n, k)``; without them L0 and the firing counts stay undefined (NaN).
        """
        if x.shape != x_hat.shape:
            raise DimensionError(f"x {tuple(x.shape)} and its reconstruction {tuple(x_hat.shape)} differ in shape")
        x, x_hat = x.double().cpu(), x_hat.double().cpu()
        self.n += x.shape[0]
        s = x.sum(0)
        self.sum_x = s if self.sum_x is None else self.sum_x + s
        self.sum_sq += float((x * x).sum())
        self.sum_residual += float(((x - x_hat) ** 2).sum())
        self.sum_cos += float(torch.nn.functional.cosine_similarity(x, x_hat, dim=1).sum())
        if codes is not None:
            nz = (codes != 0).cpu()
            self.sum_l0 += float(nz.sum())
            f = nz.sum(0).double()
            self.fired = f if self.fired is None else self.fired + f

    def result(self) -> ReconstructionMetrics:
        """The metrics over everything added so far."""
        if self.n == 0 or self.sum_x is None:
            raise DimensionError("no rows were added to the metric accumulator")
        total = self.sum_sq - float((self.sum_x**2).sum()) / self.n
        mse = self.sum_residual / self.n
        fvu = self.sum_residual / total if total > 1e-30 else float("nan")
        freq = (self.fired / self.n).numpy() if self.fired is not None else np.zeros(0)
        return ReconstructionMetrics(
            l0=self.sum_l0 / self.n if self.fired is not None else float("nan"),
            fvu=fvu,
            mse=mse,
            cosine=self.sum_cos / self.n,
            dead_fraction=float((freq == 0).mean()) if freq.size else float("nan"),
            dense_fraction=float((freq > self.dense_threshold).mean()) if freq.size else float("nan"),
            n_samples=self.n,
            firing_frequency=freq,
        )


@dataclass
class ReconstructionMetrics(Result):
    """How well a decomposition reconstructs its input, and how sparse its codes are.

    ``l0`` (mean active latents per sample), ``fvu`` (fraction of variance unexplained), ``mse``,
    ``cosine`` (mean cosine of input and reconstruction), ``dead_fraction`` / ``dense_fraction`` of
    latents, and each latent's ``firing_frequency``.

    Parameters
    ----------
    l0 : float
        Mean number of non-zero latents per sample (NaN without codes).
    fvu : float
        Residual sum of squares over the total sum of squares about the mean.
    mse : float
        Residual sum of squares per sample (summed over features).
    cosine : float
        Mean cosine similarity of input and reconstruction.
    dead_fraction, dense_fraction : float
        Fraction of latents that never fire, and that fire on more than ``dense_threshold`` of the samples.
    n_samples : int
        Number of samples evaluated.
    firing_frequency : numpy.ndarray, optional
        Fraction of samples on which each latent is non-zero.

    >>> m = reconstruction_metrics(sae, X)   # doctest: +SKIP
    >>> print(m.summary())                   # doctest: +SKIP
    """

    l0: float
    fvu: float
    mse: float
    cosine: float
    dead_fraction: float
    dense_fraction: float
    n_samples: int
    firing_frequency: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def explained_variance(self) -> float:
        """``1 - FVU`` (SAELens's ``explained_variance``)."""
        return 1.0 - self.fvu

    def to_frame(self) -> pd.DataFrame:
        """One row with every scalar metric."""
        row = {k: v for k, v in asdict(self).items() if k != "firing_frequency"}
        return pd.DataFrame([row])

    def summary(self) -> str:
        """Reconstruction quality and sparsity in two lines."""
        return (f"Reconstruction of {self.n_samples} samples: FVU {self.fvu:.4f} (explained variance "
                f"{self.explained_variance:.4f}), MSE {self.mse:.4g}, cosine {self.cosine:.4f}\n"
                f"  L0 {self.l0:.2f}; {self.dead_fraction:.1%} dead and {self.dense_fraction:.1%} dense latents "
                f"of {len(self.firing_frequency)}")

    def plot(self, **kwargs: Any) -> Any:
        """Histogram of log10 firing frequencies (dead latents at the far left)."""
        import plotly.graph_objects as go

        freq = np.log10(np.clip(self.firing_frequency, 1e-7, None))
        fig = go.Figure(go.Histogram(x=freq, nbinsx=50))
        return themed(fig, title=kwargs.get("title", f"latent firing frequency (L0 {self.l0:.1f}, FVU {self.fvu:.3f}, "
                                                     f"dead {self.dead_fraction:.1%})"),
                      xaxis_title="log10 frequency", yaxis_title="latents")


def reconstruction_metrics(estimator: Any, X: Any, batch_size: int = 4096, dense_threshold: float = 0.1) -> ReconstructionMetrics:
    """Evaluate a fitted estimator on ``X`` (anything ``fit`` accepts), streaming in minibatches.

    Parameters
    ----------
    estimator : object
        A fitted estimator with ``transform`` and ``inverse_transform``.
    X : Activations, torch.Tensor, numpy.ndarray or iterable
        The data, as ``fit`` accepts it (a matrix, or an iterable of batches/an activation store).
    batch_size : int, optional
        Rows per minibatch (default 4096).
    dense_threshold : float, optional
        Firing frequency above which a latent counts as dense (default 0.1).
    """
    from ..tensor import Activations
    from ._data import as_matrix, minibatches

    acc = ReconstructionAccumulator(dense_threshold)
    if isinstance(X, (Activations, torch.Tensor, np.ndarray)):
        data = as_matrix(X)
        batches = (data[i:i + batch_size] for i in range(0, data.shape[0], batch_size))
    else:
        batches = minibatches(X, batch_size)
    for x in batches:
        codes = estimator.transform(x)
        acc.add(x, estimator.inverse_transform(codes), codes)
    return acc.result()


# --------------------------------------------------------------------- language models


@dataclass
class SplicedLMMetrics(Result):
    """Next-token loss with the reconstruction spliced in at ``site``.

    ``ce_loss_recovered = (ce_ablated - ce_spliced) / (ce_ablated - ce_clean)`` where the ablation
    replaces the site by zeros (``ablation="zero"``) or its mean (``"mean"``); ``kl`` is the mean
    KL(clean || spliced) of the next-token distributions over all positions.

    Parameters
    ----------
    site : str
        The resolved site name.
    ce_clean, ce_spliced, ce_ablated : float
        Mean next-token cross-entropy (nats) of the clean, spliced and ablated model.
    ce_loss_recovered : float
        ``(ce_ablated - ce_spliced) / (ce_ablated - ce_clean)`` (NaN when the ablation changes nothing).
    kl, kl_ablated : float
        Mean KL(clean || spliced) and KL(clean || ablated) of the next-token distributions.
    n_tokens : int
        Number of tokens in ``tokens``.

    >>> m = spliced_lm_metrics(sae, model, tokens, "blocks.3.mlp.hook_post")  # doctest: +SKIP
    >>> print(m.summary())                                                    # doctest: +SKIP
    """

    site: str
    ce_clean: float
    ce_spliced: float
    ce_ablated: float
    ce_loss_recovered: float
    kl: float
    kl_ablated: float
    n_tokens: int

    def to_frame(self) -> pd.DataFrame:
        """One row with every number."""
        return pd.DataFrame([asdict(self)])

    def summary(self) -> str:
        """Loss recovered and KL in two lines."""
        return (f"Spliced at {self.site} over {self.n_tokens} tokens: CE loss recovered {self.ce_loss_recovered:.1%}\n"
                f"  CE clean {self.ce_clean:.4f}, spliced {self.ce_spliced:.4f}, ablated {self.ce_ablated:.4f} nats; "
                f"KL {self.kl:.4f} (ablated {self.kl_ablated:.4f})")

    def plot(self, **kwargs: Any) -> Any:
        """Cross-entropy of the clean, spliced and ablated model (plotly bars)."""
        import plotly.graph_objects as go

        fig = go.Figure(go.Bar(x=["clean", "spliced", "ablated"], y=[self.ce_clean, self.ce_spliced, self.ce_ablated]))
        return themed(fig, title=kwargs.get("title", f"{self.site}: CE loss recovered {self.ce_loss_recovered:.1%}, "
                                                     f"KL {self.kl:.3f}"),
                      yaxis_title="next-token cross-entropy (nats)")


def _next_token_ce(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    logp = logits[:, :-1].float().log_softmax(-1)
    return -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def _kl(clean: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    p = clean.float().log_softmax(-1)
    q = other.float().log_softmax(-1)
    return (p.exp() * (p - q)).sum(-1)


def splice_hook(estimator: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """An edit (for :class:`interp.engine.Hook`) replacing the site's activations by the reconstruction.

    Parameters
    ----------
    estimator : object
        A fitted estimator with ``transform`` and ``inverse_transform``; the activations are flattened to
        ``(-1, d)`` float32 rows, reconstructed, and cast back to their dtype and shape.
    """

    def hook(activation: torch.Tensor) -> torch.Tensor:
        flat = activation.reshape(-1, activation.shape[-1])
        recon = estimator.inverse_transform(estimator.transform(flat.float()))
        return recon.reshape(activation.shape).to(activation.dtype)

    return hook


@torch.no_grad()
def spliced_lm_metrics(estimator: Any, model: Any, tokens: torch.Tensor, site: str, ablation: str = "zero",
                       batch_size: int = 8) -> SplicedLMMetrics:
    """CE loss recovered and KL when ``estimator``'s reconstruction replaces ``site`` in ``model``.

    ``model`` is a TransformerLens ``TransformerBridge`` or any ``nn.Module`` (sites as in
    :mod:`interp.engine`); ``tokens`` is a
    ``(batch, pos)`` integer tensor.

    Parameters
    ----------
    estimator : object
        A fitted estimator with ``transform`` and ``inverse_transform``.
    model : TransformerBridge or torch.nn.Module
        The model.
    tokens : torch.Tensor
        Integer token ids ``(batch, pos)``.
    site : str
        The site to splice (a hook name or module path; resolved by :func:`interp.engine.resolve_site`).
    ablation : str, optional
        The baseline: ``"zero"`` (default) or ``"mean"`` (the site's mean activation over ``tokens``).
    batch_size : int, optional
        Sequences per forward pass (default 8).

    >>> m = spliced_lm_metrics(sae, model, tokens, "blocks.3.mlp.hook_post")  # doctest: +SKIP
    """
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.is_floating_point():
        raise InputTypeError("tokens must be an integer tensor of shape (batch, pos)")
    if ablation not in ("zero", "mean"):
        raise InputTypeError(f"ablation must be 'zero' or 'mean', got {ablation!r}")
    site = engine.resolve_site(model, site)
    mean = None
    if ablation == "mean":
        total, count = None, 0  # weighted by token counts: the last batch may be smaller than the others
        for i in range(0, tokens.shape[0], batch_size):
            act = engine.record(model, tokens[i:i + batch_size], [site], stop=True).acts[site]
            rows = act.reshape(-1, act.shape[-1]).double()
            total = rows.sum(0) if total is None else total + rows.sum(0)
            count += rows.shape[0]
        mean = (total / count).float()

    def ablate(act: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(act) if mean is None else mean.to(act).expand_as(act).clone()

    ce = {"clean": [], "spliced": [], "ablated": []}
    kls, kls_ablated = [], []
    for i in range(0, tokens.shape[0], batch_size):
        batch = tokens[i:i + batch_size]
        clean = engine.run(model, batch)
        spliced = engine.run(model, batch, [engine.Hook(site, splice_hook(estimator))])
        ablated = engine.run(model, batch, [engine.Hook(site, ablate)])
        ce["clean"].append(_next_token_ce(clean, batch).reshape(-1))
        ce["spliced"].append(_next_token_ce(spliced, batch).reshape(-1))
        ce["ablated"].append(_next_token_ce(ablated, batch).reshape(-1))
        kls.append(_kl(clean, spliced).reshape(-1))
        kls_ablated.append(_kl(clean, ablated).reshape(-1))
    c, s, a = (float(torch.cat(ce[k]).mean()) for k in ("clean", "spliced", "ablated"))
    recovered = (a - s) / (a - c) if abs(a - c) > 1e-12 else float("nan")
    return SplicedLMMetrics(site=site, ce_clean=c, ce_spliced=s, ce_ablated=a, ce_loss_recovered=recovered,
                            kl=float(torch.cat(kls).mean()), kl_ablated=float(torch.cat(kls_ablated).mean()),
                            n_tokens=int(tokens.numel()))
