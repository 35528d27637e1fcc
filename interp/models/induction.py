"""``induction-2l``: a 2-layer attention-only transformer with induction heads, trained locally.

The model is a :class:`transformer_lens.model_bridge.TransformerBridge` built with
``TransformerBridge.boot_native`` (d_model 64, 2 layers x 4 heads of d_head 16, n_ctx 64, vocabulary
128, no MLPs, no LayerNorm) and trained with AdamW on a mixed repeated-random-token task
(:func:`make_repeated_tokens`). Two attention-only layers are the smallest model in which induction
heads form: a previous-token head in layer 0 composes with an induction head in layer 1 (K-composition)
to attend from a repeated token to the token that followed its previous occurrence and copy it
(Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"; Olsson et al. 2022,
"In-context Learning and Induction Heads").

Training runs on one thread (so it is deterministic per seed on a given machine and torch version)
and takes about 70 s of CPU time; the weights are cached
under ``cache_dir("models", "induction-2l")`` as safetensors plus a JSON file with the configuration,
training settings and statistics measured after training (losses, previous-token and induction head
scores on unseen sequences). Later loads read the cache.

>>> model, tokenizer = load_induction_2l()  # doctest: +SKIP
>>> data = make_repeated_tokens(8, seq_len=64, seed=123)
>>> logits = model(data.tokens)  # doctest: +SKIP
>>> induction_head_scores(model).to_frame()  # doctest: +SKIP

Tokens are integer ids ``0..127``; id 0 is BOS and every sequence starts with it. The tokenizer
(:func:`interp.models._tokenizers.integer_tokenizer`) reads whitespace-separated ids, e.g. ``"17 5 99 17 5"``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from .. import engine
from ..cache import cache_dir
from ..errors import ConfigError, DimensionError, SchemaError
from ..results import Result, themed
from ..tensor import atomic_write

BOS = 0
MODEL_NAME = "induction-2l"

#: Architecture of ``induction-2l`` (passed to ``TransformerBridgeConfig``; ``seed`` is added per model).
ARCHITECTURE: dict[str, Any] = {
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 4,
    "d_head": 16,
    "n_ctx": 64,
    "d_vocab": 128,
    "attn_only": True,
    "act_fn": None,
    "normalization_type": None,
}


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of the induction training run (all of them enter the cache key).

    Parameters
    ----------
    steps : int, optional
        Optimizer steps (default 2000).
    batch_size : int, optional
        Sequences per step (default 32).
    lr : float, optional
        Peak AdamW learning rate (default 5e-3), reached after the warm-up, then cosine-decayed to 10%.
    weight_decay : float, optional
        AdamW weight decay (default 0.01).
    warmup_steps : int, optional
        Steps of linear warm-up (default 100).
    tiled_fraction : float, optional
        Fraction of tiled training sequences (default 0.5; see :func:`make_repeated_tokens`).
    min_period : int, optional
        Shortest repeated block in the training data (default 4).
    grad_clip : float, optional
        Maximum gradient norm (default 1.0).
    """

    steps: int = 2000
    batch_size: int = 32
    lr: float = 5e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    tiled_fraction: float = 0.5
    min_period: int = 4
    grad_clip: float = 1.0


# ----------------------------------------------------------------------------------------------------------------
# Task data
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class RepeatedTokens:
    """Sequences of random tokens containing a repeated block (see :func:`make_repeated_tokens`).

    Parameters
    ----------
    tokens : torch.Tensor
        ``[n, seq_len]`` int64 token ids; position 0 is BOS (id 0).
    is_repeat : torch.Tensor
        ``[n, seq_len]`` bool; True where the token is a copy of the token ``period`` positions back.
    period : torch.Tensor
        ``[n]`` int64 length of the repeated block.
    start : torch.Tensor
        ``[n]`` int64 position where the first copy of the block begins.
    end : torch.Tensor
        ``[n]`` int64 position (exclusive) where the repeated part ends.
    tiled : torch.Tensor
        ``[n]`` bool; True for tiled sequences (the block repeats until the end), False for single copies.
    """

    tokens: torch.Tensor
    is_repeat: torch.Tensor
    period: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    tiled: torch.Tensor

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def is_first(self) -> torch.Tensor:
        """``[n, seq_len]`` bool; True on the first copy of the block (first occurrences, unpredictable)."""
        pos = torch.arange(self.tokens.shape[1])
        return (pos >= self.start[:, None]) & (pos < (self.start + self.period)[:, None])

    @property
    def predictable(self) -> torch.Tensor:
        """``[n, seq_len]`` bool; True at target positions an induction head can predict.

        Token ``t`` is predictable when it is a repeat and so is token ``t - 1`` (the query position
        ``t - 1`` then has an earlier occurrence whose successor is token ``t``). The first token of the
        second copy is a repeat but is not predictable.
        """
        previous = torch.zeros_like(self.is_repeat)
        previous[:, 1:] = self.is_repeat[:, :-1]
        return self.is_repeat & previous

    @property
    def induction_source(self) -> torch.Tensor:
        """``[n, seq_len]`` int64; for repeat positions ``t``, the position ``t - period + 1`` an induction
        head should attend to (the token after the previous occurrence of token ``t``); -1 elsewhere."""
        pos = torch.arange(self.tokens.shape[1]).expand_as(self.tokens)
        source = pos - self.period[:, None] + 1
        return torch.where(self.is_repeat, source, torch.full_like(source, -1))

    def to_frame(self) -> pd.DataFrame:
        """One row per sequence: period, start, end, tiled."""
        return pd.DataFrame(
            {
                "period": self.period.tolist(),
                "start": self.start.tolist(),
                "end": self.end.tolist(),
                "tiled": self.tiled.tolist(),
            }
        )


def _sample_repeated(
    n: int,
    seq_len: int,
    generator: torch.Generator,
    d_vocab: int = 128,
    tiled_fraction: float = 0.5,
    min_period: int = 4,
    max_period: int | None = None,
) -> RepeatedTokens:
    max_period = max_period or (seq_len - 1) // 2
    if seq_len < 2 * min_period + 1 or max_period < min_period:
        raise DimensionError(f"seq_len={seq_len} is too short for two copies of a block of {min_period} tokens (+BOS)")
    if max_period > d_vocab - 1:
        raise ConfigError(f"max_period={max_period} exceeds the {d_vocab - 1} non-BOS tokens")
    tokens = torch.randint(1, d_vocab, (n, seq_len), generator=generator)  # noise everywhere, overwritten below
    tokens[:, 0] = BOS
    period = torch.randint(min_period, max_period + 1, (n,), generator=generator)
    tiled = torch.rand(n, generator=generator) < tiled_fraction
    # single copies start after 0..(seq_len - 1 - 2 * period) noise tokens; tiled blocks start right after BOS
    slack = (seq_len - 1 - 2 * period).clamp(min=0)
    offset = (torch.rand(n, generator=generator) * (slack + 1)).long().clamp(max=slack)
    start = torch.where(tiled, torch.ones_like(period), 1 + offset)
    end = torch.where(tiled, torch.full_like(period, seq_len), start + 2 * period)
    # distinct tokens inside a block, so the previous occurrence of each repeated token is unique in the block
    blocks = torch.argsort(torch.rand(n, d_vocab - 1, generator=generator), dim=1) + 1
    pos = torch.arange(seq_len)
    in_block = (pos >= start[:, None]) & (pos < end[:, None])
    block_index = ((pos - start[:, None]) % period[:, None]).clamp(min=0)
    tokens = torch.where(in_block, torch.gather(blocks, 1, block_index), tokens)
    is_repeat = in_block & (pos >= (start + period)[:, None])
    return RepeatedTokens(tokens, is_repeat, period, start, end, tiled)


def make_repeated_tokens(
    n: int,
    seq_len: int = 64,
    seed: int = 0,
    *,
    d_vocab: int = 128,
    tiled_fraction: float = 0.5,
    min_period: int = 4,
    max_period: int | None = None,
) -> RepeatedTokens:
    """Random-token sequences with a repeated block: the induction task of ``induction-2l``.

    Every sequence is ``BOS`` followed by random tokens ``1..d_vocab-1``. A block of ``period``
    distinct random tokens (``min_period <= period <= max_period``, default ``(seq_len - 1) // 2``) is

    * **tiled** (fraction ``tiled_fraction``): repeated from position 1 to the end of the sequence, or
    * **single-copy**: placed after a random-length noise prefix and repeated once, followed by noise.

    Deterministic in ``seed``. Returns :class:`RepeatedTokens` (``tokens``, ``is_repeat``, ``period``, ...).

    Parameters
    ----------
    n : int
        Number of sequences (at least 1).
    seq_len : int, optional
        Tokens per sequence including BOS (default 64); must fit two copies of a ``min_period`` block.
    seed : int, optional
        Seed of the torch generator (default 0).
    d_vocab : int, optional
        Vocabulary size including BOS (default 128).
    tiled_fraction : float, optional
        Expected fraction of tiled sequences, in [0, 1] (default 0.5).
    min_period, max_period : int, optional
        Bounds of the block length (defaults 4 and ``(seq_len - 1) // 2``); ``max_period`` must not exceed
        ``d_vocab - 1``.

    >>> data = make_repeated_tokens(2, seq_len=16, seed=0, tiled_fraction=1.0, min_period=5, max_period=5)
    >>> bool((data.tokens[:, 6:] == data.tokens[:, 1:-5]).all())
    True
    """
    if n < 1:
        raise ConfigError(f"n must be a positive number of sequences, got {n}")
    if not 0.0 <= tiled_fraction <= 1.0:
        raise ConfigError(f"tiled_fraction must be in [0, 1], got {tiled_fraction}")
    generator = torch.Generator().manual_seed(int(seed))
    return _sample_repeated(n, seq_len, generator, d_vocab, tiled_fraction, min_period, max_period)


# ----------------------------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class InductionScores(Result):
    """Previous-token and induction scores of every head on repeated-token sequences of known period.

    (The general detectors, for any token sequences, are :func:`interp.label.heads.head_scores`.)

    Parameters
    ----------
    previous_token : torch.Tensor
        ``[n_layers, n_heads]`` mean attention from position ``t`` to ``t - 1`` (``t >= 2``).
    induction : torch.Tensor
        ``[n_layers, n_heads]`` mean attention from repeat positions ``t`` to ``t - period + 1``
        (the token after the previous occurrence of token ``t``).
    n_sequences : int
        Number of sequences the scores were averaged over.

    >>> scores = induction_head_scores(model)  # doctest: +SKIP
    >>> print(scores.summary())  # doctest: +SKIP
    """

    previous_token: torch.Tensor
    induction: torch.Tensor
    n_sequences: int

    def to_frame(self) -> pd.DataFrame:
        """One row per head: layer, head, previous_token, induction."""
        n_layers, n_heads = self.previous_token.shape
        rows = [
            {
                "layer": layer,
                "head": head,
                "previous_token": float(self.previous_token[layer, head]),
                "induction": float(self.induction[layer, head]),
            }
            for layer in range(n_layers)
            for head in range(n_heads)
        ]
        return pd.DataFrame(rows)

    def heads(self, kind: str = "induction", threshold: float = 0.5, layer: int | None = None) -> list[tuple[int, int]]:
        """``(layer, head)`` pairs whose ``kind`` score ("induction" or "previous_token") is at least ``threshold``.

        Parameters
        ----------
        kind : str, optional
            ``"induction"`` (default) or ``"previous_token"``.
        threshold : float, optional
            Minimum score (default 0.5).
        layer : int, optional
            Keep only heads of this layer; None: every layer.
        """
        if kind not in ("induction", "previous_token"):
            raise ConfigError(f"kind must be 'induction' or 'previous_token', got {kind!r}")
        scores = getattr(self, kind)
        pairs = [(int(li), int(hi)) for li, hi in (scores >= threshold).nonzero().tolist()]
        return [p for p in pairs if layer is None or p[0] == layer]

    def summary(self) -> str:
        """The best head of each kind and the heads above 0.5."""
        lines = [f"Induction scores of {self.induction.numel()} heads on {self.n_sequences} repeated-token sequences"]
        for kind in ("previous_token", "induction"):
            scores = getattr(self, kind)
            layer, head = divmod(int(scores.argmax()), scores.shape[1])
            above = self.heads(kind, 0.5)
            lines.append(f"  {kind.replace('_', '-')}: best L{layer}H{head} {float(scores.max()):.3f}; "
                         f"{len(above)} head(s) >= 0.5 {above if above else ''}".rstrip())
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Plotly heatmaps of both scores (layers x heads)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=("previous-token score", "induction score"))
        for col, scores in enumerate((self.previous_token, self.induction), start=1):
            fig.add_trace(
                go.Heatmap(z=scores.numpy(), zmin=0, zmax=1, colorscale="Blues", showscale=col == 2), row=1, col=col
            )
            fig.update_xaxes(title_text="head", row=1, col=col)
            fig.update_yaxes(title_text="layer", row=1, col=col)
        return themed(fig, title=kwargs.get("title", "induction-task head scores"), height=320)


def _attention_patterns(model: Any, tokens: torch.Tensor) -> list[torch.Tensor]:
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(n_layers)]
    with torch.no_grad():
        cache = engine.record(model, tokens, names, stop=True).acts
    return [cache[name].float().cpu() for name in names]  # [batch, head, query, key]


def induction_head_scores(model: Any, data: RepeatedTokens | None = None, batch_size: int = 64) -> InductionScores:
    """Previous-token and induction scores of every head of ``model`` on repeated-token sequences.

    ``data`` defaults to 256 fresh sequences (``make_repeated_tokens(256, n_ctx, seed=10_000)``), a
    seed the training never uses. The induction score of a head is its mean attention from each repeat
    position ``t`` to ``t - period + 1``; the previous-token score its mean attention from ``t`` to ``t - 1``.

    Parameters
    ----------
    model : TransformerBridge
        An attention-only bridge with ``blocks.{layer}.attn.hook_pattern`` hooks.
    data : RepeatedTokens, optional
        The sequences; None: 256 fresh ones of length ``n_ctx``, seed 10 000.
    batch_size : int, optional
        Sequences per forward pass (default 64).

    >>> scores = induction_head_scores(model)  # doctest: +SKIP
    >>> scores.heads("induction", layer=1)  # doctest: +SKIP
    """
    if data is None:
        data = make_repeated_tokens(256, model.cfg.n_ctx, seed=10_000, d_vocab=model.cfg.d_vocab)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    prev_sum = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    ind_sum = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    prev_count = ind_count = 0
    device = next(model.parameters()).device
    for begin in range(0, len(data), batch_size):
        tokens = data.tokens[begin : begin + batch_size]
        source = data.induction_source[begin : begin + batch_size]
        batch, seq_len = tokens.shape
        patterns = _attention_patterns(model, tokens.to(device))
        query = torch.arange(2, seq_len)
        b_idx, q_idx = (source >= 0).nonzero(as_tuple=True)
        for layer, pattern in enumerate(patterns):
            prev_sum[layer] += pattern[:, :, query, query - 1].sum(dim=(0, 2)).double()
            ind_sum[layer] += pattern[b_idx, :, q_idx, source[b_idx, q_idx]].sum(dim=0).double()
        prev_count += batch * len(query)
        ind_count += len(b_idx)
    return InductionScores((prev_sum / prev_count).float(), (ind_sum / max(ind_count, 1)).float(), len(data))


def repeated_token_losses(model: Any, data: RepeatedTokens | None = None, batch_size: int = 64) -> dict[str, float]:
    """Mean next-token cross-entropy (nats) on first occurrences vs predictable repeats.

    ``first`` averages over targets in the first copy of the block (unpredictable: about
    ``log(d_vocab - 1)`` for a model that has learnt the task), ``repeat`` over targets that an induction
    head can predict (:attr:`RepeatedTokens.predictable`); ``ratio = repeat / first``.

    Parameters
    ----------
    model : TransformerBridge
        The model; its logits are read on ``data.tokens``.
    data : RepeatedTokens, optional
        The sequences; None: 256 fresh ones of length ``n_ctx``, seed 10 000.
    batch_size : int, optional
        Sequences per forward pass (default 64).
    """
    if data is None:
        data = make_repeated_tokens(256, model.cfg.n_ctx, seed=10_000, d_vocab=model.cfg.d_vocab)
    device = next(model.parameters()).device
    totals = {"first": [0.0, 0], "repeat": [0.0, 0]}
    for begin in range(0, len(data), batch_size):
        tokens = data.tokens[begin : begin + batch_size]
        with torch.no_grad():
            logits = model(tokens.to(device)).float().cpu()
        losses = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
        losses = losses.view(tokens.shape[0], -1)
        for key, mask in (("first", data.is_first), ("repeat", data.predictable)):
            target_mask = mask[begin : begin + batch_size, 1:]
            totals[key][0] += float(losses[target_mask].sum())
            totals[key][1] += int(target_mask.sum())
    first, repeat = (totals[k][0] / max(totals[k][1], 1) for k in ("first", "repeat"))
    return {"first": first, "repeat": repeat, "ratio": repeat / first}


# ----------------------------------------------------------------------------------------------------------------
# Building, training, caching
# ----------------------------------------------------------------------------------------------------------------


def _bridge_config(seed: int, **overrides: Any):
    from transformer_lens.config import TransformerBridgeConfig

    unknown = set(overrides) - set(ARCHITECTURE)
    if unknown:
        raise ConfigError(f"unknown architecture keys {sorted(unknown)}; known: {sorted(ARCHITECTURE)}")
    return TransformerBridgeConfig(**{**ARCHITECTURE, **overrides}, seed=seed)


def build_model(seed: int = 0, tokenizer: Any = None, **architecture: Any) -> Any:
    """An untrained ``induction-2l`` bridge (``boot_native``, initialised deterministically from ``seed``).

    Parameters
    ----------
    seed : int, optional
        Initialisation seed (default 0).
    tokenizer : object, optional
        A tokenizer to attach (:func:`attach_tokenizer`); None attaches none.
    **architecture
        Overrides of :data:`ARCHITECTURE` keys (an unknown key raises :class:`ConfigError`).
    """
    from transformer_lens.model_bridge import TransformerBridge

    model = TransformerBridge.boot_native(_bridge_config(seed, **architecture))
    if tokenizer is not None:
        attach_tokenizer(model, tokenizer)
    return model


def attach_tokenizer(model: Any, tokenizer: Any) -> Any:
    """Give a bridge the integer tokenizer (it prepends BOS and appends nothing).

    Parameters
    ----------
    model : TransformerBridge
        The bridge; returned with the tokenizer attached and BOS prepending switched on.
    tokenizer : object
        The tokenizer, e.g. :func:`interp.models._tokenizers.integer_tokenizer`.
    """
    model.tokenizer = tokenizer  # first assignment: the bridge keeps cfg.d_vocab and skips its tokenizer probing
    model.cfg.tokenizer_prepends_bos = True
    model.cfg.tokenizer_appends_eos = False
    model.cfg.default_prepend_bos = True
    return model


def _lr_at(step: int, settings: TrainSettings) -> float:
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))  # cosine to 10%


def train(
    seed: int = 0,
    settings: TrainSettings | None = None,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    **architecture: Any,
) -> tuple[Any, dict[str, Any]]:
    """Train ``induction-2l`` from scratch; returns ``(model, stats)``. Deterministic in ``seed``.

    Initialisation uses ``seed`` (``boot_native``); batches come from a generator seeded with
    ``seed + 1`` (:func:`make_repeated_tokens`' sampler, mixed tiled/single-copy). The loss is
    next-token cross-entropy on every position. ``stats`` holds the loss curve and the wall time.

    Parameters
    ----------
    seed : int, optional
        Seed of the initialisation (``seed``) and of the training batches (``seed + 1``) (default 0).
    settings : TrainSettings, optional
        Hyper-parameters; None: :class:`TrainSettings` defaults.
    progress : bool, optional
        Show a progress bar (default True).
    callback : callable, optional
        Called as ``callback(step, loss)`` after every step.
    **architecture
        Overrides of :data:`ARCHITECTURE` keys.
    """
    settings = settings or TrainSettings()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same arithmetic on every machine, and faster than 2 threads on a busy 2-core box
    try:
        return _train(seed, settings, progress, callback, architecture)
    finally:
        torch.set_num_threads(threads)


def _train(
    seed: int,
    settings: TrainSettings,
    progress: bool,
    callback: Callable[[int, float], None] | None,
    architecture: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    model = build_model(seed, **architecture)
    model.train()
    cfg = model.cfg
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(int(seed) + 1)
    curve: list[tuple[int, float]] = []
    running = None
    started, cpu_started = time.perf_counter(), time.process_time()
    steps = range(settings.steps)
    if progress:
        from interp._progress import tqdm

        steps = tqdm(steps, desc=f"training {MODEL_NAME} (seed {seed})", leave=False)
    for step in steps:
        batch = _sample_repeated(
            settings.batch_size, cfg.n_ctx, generator, cfg.d_vocab, settings.tiled_fraction, settings.min_period
        )
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, settings)
        logits = model(batch.tokens)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch.tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        value = loss.item()
        running = value if running is None else 0.95 * running + 0.05 * value
        if step % 50 == 0 or step == settings.steps - 1:
            curve.append((step, round(value, 5)))
        if callback is not None:
            callback(step, value)
    model.eval()
    stats = {
        "train_seconds": round(time.perf_counter() - started, 2),
        "train_cpu_seconds": round(time.process_time() - cpu_started, 2),
        "final_loss_ema": running,
        "loss_curve": curve,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    return model, stats


def _cache_key(seed: int, settings: TrainSettings, architecture: dict[str, Any]) -> str:
    spec = json.dumps({"arch": {**ARCHITECTURE, **architecture}, "train": asdict(settings), "v": 1}, sort_keys=True)
    return f"seed{seed}-{hashlib.sha256(spec.encode()).hexdigest()[:10]}"


def cache_paths(seed: int = 0, settings: TrainSettings | None = None, **architecture: Any) -> tuple[Path, Path]:
    """``(weights.safetensors, stats.json)`` paths of a cached ``induction-2l`` under ``$INTERP_CACHE``.

    Parameters
    ----------
    seed : int, optional
        The model's seed (default 0).
    settings : TrainSettings, optional
        Training settings; None: the defaults. They enter the cache key.
    **architecture
        Overrides of :data:`ARCHITECTURE` keys; they enter the cache key.
    """
    key = _cache_key(seed, settings or TrainSettings(), architecture)
    root = cache_dir("models", MODEL_NAME)
    return root / f"{key}.safetensors", root / f"{key}.json"


@dataclass
class _Cached:
    weights: Path
    stats: Path
    info: dict[str, Any] = field(default_factory=dict)


def _cache_complete(weights: Path, stats: Path) -> bool:
    return weights.is_file() and stats.is_file()  # the JSON is written last


def _write_cache(model: Any, info: dict[str, Any], weights: Path, stats: Path) -> None:
    from safetensors.torch import save_file

    state = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in model.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, tmp, metadata={"model": MODEL_NAME}))
    text = json.dumps(info, indent=1, sort_keys=True)
    atomic_write(stats, lambda tmp: Path(tmp).write_text(text))  # written last: marks the cache complete


def _read_cache(seed: int, weights: Path, stats: Path, architecture: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from safetensors.torch import load_file

    from ..checks import cache_fix, read_json, reading

    info = read_json(stats, f"cached {MODEL_NAME} statistics", cache_fix(weights, stats))
    model = build_model(seed, **architecture)
    with reading(weights, f"cached {MODEL_NAME} weights", cache_fix(weights, stats)):
        state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SchemaError(
            f"cached {MODEL_NAME} weights {weights} do not fit the model (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); delete the file to retrain"
        )
    model.eval()
    return model, info


def load_induction_2l(
    device: str | torch.device | None = None,
    *,
    seed: int = 0,
    retrain: bool = False,
    progress: bool = True,
    settings: TrainSettings | None = None,
    **architecture: Any,
) -> tuple[Any, Any]:
    """Load (training and caching it on first use) the ``induction-2l`` model; returns ``(model, tokenizer)``.

    The model is a fresh ``TransformerBridge`` in eval mode on ``device`` (default CPU) with the integer
    tokenizer attached; ``model.induction_stats`` holds the JSON statistics (losses, head scores, the
    previous-token heads of layer 0 and the induction heads of layer 1, training time).
    The first call for a seed trains (about 70 s of single-thread CPU time; longer wall time on a busy
    machine), later calls read the cache (about 0.2 s once ``transformer_lens`` is imported).

    Parameters
    ----------
    device : str or torch.device, optional
        Where to put the model; None: CPU.
    seed : int, optional
        The model's seed (default 0); each seed is a separate cached model.
    retrain : bool, optional
        Train again and overwrite the cache (default False).
    progress : bool, optional
        Show a progress bar while training (default True).
    settings : TrainSettings, optional
        Training settings; None: the defaults.
    **architecture
        Overrides of :data:`ARCHITECTURE` keys (a separate cached model).

    >>> model, tokenizer = load_induction_2l()  # doctest: +SKIP
    >>> model.induction_stats["induction_heads"]  # seed 0: heads 1.0, 1.1 and 1.2  # doctest: +SKIP
    [[1, 0], [1, 1], [1, 2]]
    """
    from ._tokenizers import integer_tokenizer

    settings = settings or TrainSettings()
    weights, stats = cache_paths(seed, settings, **architecture)
    tokenizer = integer_tokenizer(vocab_size={**ARCHITECTURE, **architecture}["d_vocab"], name=MODEL_NAME)
    if not retrain and _cache_complete(weights, stats):
        model, info = _read_cache(seed, weights, stats, architecture)  # files are renamed into place: no lock
    else:
        lock_path = weights.with_name(f".{weights.stem}.lock")
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process trains, the others wait and then read its cache
            try:
                if retrain or not _cache_complete(weights, stats):
                    model, info = train(seed, settings, progress=progress, **architecture)
                    info.update(_measure(model))
                    info.update({"model": MODEL_NAME, "seed": seed, "architecture": {**ARCHITECTURE, **architecture}})
                    info["settings"] = asdict(settings)
                    _write_cache(model, info, weights, stats)
                else:
                    model, info = _read_cache(seed, weights, stats, architecture)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    attach_tokenizer(model, tokenizer)
    if device is not None and torch.device(device) != next(model.parameters()).device:
        with contextlib.redirect_stdout(io.StringIO()):  # the bridge prints "Moving model to device"
            model = model.to(device)
    model.induction_stats = info
    return model, tokenizer


def _measure(model: Any) -> dict[str, Any]:
    """Statistics recorded with the cached weights (on unseen sequences, seed 10_000)."""
    scores = induction_head_scores(model)
    losses = repeated_token_losses(model)
    return {
        "eval_seed": 10_000,
        "loss_first": losses["first"],
        "loss_repeat": losses["repeat"],
        "loss_ratio": losses["ratio"],
        "prev_token_scores": scores.previous_token.tolist(),
        "induction_scores": scores.induction.tolist(),
        "prev_token_heads": scores.heads("previous_token", 0.5, layer=0),
        "induction_heads": scores.heads("induction", 0.5, layer=1),
        "best_prev_token_head": [0, int(scores.previous_token[0].argmax())],
        "best_induction_head": [1, int(scores.induction[1].argmax())],
    }
