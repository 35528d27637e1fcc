"""``digits-vit``: a small Vision Transformer trained locally on scikit-learn's 8x8 digits.

The model (Dosovitskiy et al. 2021, arXiv:2010.11929, scaled down) is trained once per seed on a fixed
train/test split of :func:`sklearn.datasets.load_digits` (at most about 40 s of CPU time, on one thread), cached under
``$INTERP_CACHE/models/digits-vit`` and reloaded from there afterwards. It reaches about 97-98% test accuracy.

Architecture and hookable module paths (module outputs, for ``interp.capture``; T = 17 positions, position 0
is the CLS token, positions 1..16 the 4 x 4 grid of patches in row-major order):

=============================  ======================  =============================================
module path                    output shape            what
=============================  ======================  =============================================
``patch_embed``                N x 64 x 4 x 4          conv, 4x4 kernel, stride 2, padding 1 (overlapping patches)
``embed``                      N x T x 64              CLS token + patch tokens + position embedding
``blocks.{i}``  (i = 0..3)     N x T x 64              residual stream after block i
``blocks.{i}.ln1``             N x T x 64              pre-attention LayerNorm
``blocks.{i}.attn.pattern``    N x 4 x T x T           attention probabilities (heads x query x key)
``blocks.{i}.attn``            N x T x 64              attention output (added to the residual stream)
``blocks.{i}.ln2``             N x T x 64              pre-MLP LayerNorm
``blocks.{i}.mlp.fc1``         N x T x 128             MLP pre-activations
``blocks.{i}.mlp.act``         N x T x 128             MLP hidden neurons (GELU outputs)
``blocks.{i}.mlp.fc2``         N x T x 64              MLP output (added to the residual stream)
``ln_final``                   N x T x 64              final LayerNorm
``head``                       N x 10                  logits, read from the CLS token
=============================  ======================  =============================================

MLP hidden neuron ``j`` of block ``i`` at the CLS token is ``output("blocks.{i}.mlp.act")[:, 0, j]``;
its input weights are ``model.blocks[i].mlp.fc1.weight[j]`` and output weights
``model.blocks[i].mlp.fc2.weight[:, j]``.

>>> from interp.models import load
>>> model, preprocess = load("digits-vit")  # doctest: +SKIP
>>> split = load_digits_split()
>>> logits = model(preprocess(split.test_images))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cache import cache_dir
from ..errors import ConfigError, DimensionError, InputTypeError
from ..tensor import atomic_write
from .vision import _device, as_image_list

__all__ = [
    "DIGIT_CLASSES",
    "DigitsPreprocess",
    "DigitsSplit",
    "DigitsViT",
    "DigitsViTConfig",
    "TrainConfig",
    "load_digits_split",
    "load_digits_vit",
    "train_digits_vit",
]

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
FORMAT_VERSION = 1
SPLIT_SEED = 0
TEST_FRACTION = 0.25


# ------------------------------------------------------------------------------------------------------ data


class DigitsSplit(NamedTuple):
    """The fixed train/test split of scikit-learn's digits: images N x 8 x 8 float32 in 0..16, labels int64.

    Parameters
    ----------
    train_images, test_images : numpy.ndarray
        Images ``N x 8 x 8``, float32 in 0..16 (1347 train, 450 test).
    train_labels, test_labels : numpy.ndarray
        Their digit labels, int64.
    train_index, test_index : numpy.ndarray
        Their row numbers in ``sklearn.datasets.load_digits()``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    train_index: np.ndarray  # row numbers in sklearn.datasets.load_digits()
    test_index: np.ndarray


@functools.lru_cache(maxsize=1)
def load_digits_split() -> DigitsSplit:
    """The train/test split the zoo's digits models are trained and evaluated on.

    1797 images of ``sklearn.datasets.load_digits`` split 75/25, stratified by class, with a fixed seed
    (1347 train, 450 test); it does not depend on the model's seed. Arrays are read-only.

    >>> split = load_digits_split()
    >>> split.train_images.shape, split.test_images.shape
    ((1347, 8, 8), (450, 8, 8))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    index = np.arange(len(digits.target))
    train_index, test_index = train_test_split(
        index, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=digits.target
    )
    images = digits.images.astype(np.float32)
    labels = digits.target.astype(np.int64)
    arrays = [images[train_index], labels[train_index], images[test_index], labels[test_index],
              train_index, test_index]
    for array in arrays:
        array.setflags(write=False)
    return DigitsSplit(*arrays)


@dataclass(frozen=True)
class DigitsPreprocess:
    """Digit images -> float batch ``N x 1 x 8 x 8`` in [0, 1] on ``device``.

    Accepts, as scikit-learn stores them, float or integer arrays/tensors with values 0..16 shaped 8 x 8,
    N x 8 x 8 or N x 64 (e.g. :func:`load_digits_split` images); these are divided by 16. Any other image
    (uint8 HxW(xC) arrays, PIL images, lists of them, NxHxWxC uint8 arrays) is converted to grey, resized to
    8 x 8 with area averaging and divided by 255.

    Parameters
    ----------
    device : str, optional
        Device of the returned batch (default ``"cpu"``).
    """

    device: str = "cpu"

    def __call__(self, images: Any) -> torch.Tensor:
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        if isinstance(images, np.ndarray) and images.dtype != np.uint8 and images.dtype != np.bool_:
            x = self._from_sklearn(images)
        else:
            x = self._from_images(images)
        return torch.from_numpy(x).unsqueeze(1).to(self.device)

    @staticmethod
    def _from_sklearn(array: np.ndarray) -> np.ndarray:
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise InputTypeError(f"expected numeric digit images, got dtype {array.dtype}")
        if array.shape[-1:] == (64,) and array.ndim in (1, 2):
            array = array.reshape(-1, 8, 8)
        elif array.shape[-2:] == (8, 8) and array.ndim in (2, 3):
            array = array.reshape(-1, 8, 8)
        else:
            raise DimensionError(
                f"digit arrays must be shaped 8x8, Nx8x8 or Nx64 (scikit-learn's layout, values 0..16); got "
                f"{tuple(array.shape)}. Pass other images as uint8 arrays or PIL images."
            )
        if array.size == 0:
            raise DimensionError("expected at least one digit image, got an empty batch")
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise InputTypeError("digit images contain NaN or infinite values")
        if array.min() < 0 or array.max() > 16:
            raise InputTypeError(
                f"numeric digit images must hold scikit-learn's 0..16 values, got {array.min():.3g}..{array.max():.3g}"
                "; pass uint8 arrays for 0..255 pixel values"
            )
        return array / 16.0

    @staticmethod
    def _from_images(images: Any) -> np.ndarray:
        from PIL import Image

        grey = []
        for image in as_image_list(images):
            pil = Image.fromarray(image).convert("L").resize((8, 8), resample=Image.Resampling.BOX)
            grey.append(np.asarray(pil, dtype=np.float32) / 255.0)
        return np.stack(grey)


# ----------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class DigitsViTConfig:
    """Shape of a :class:`DigitsViT`.

    Parameters
    ----------
    d_model : int, optional
        Width of the residual stream (default 64).
    n_layers : int, optional
        Transformer blocks (default 4).
    n_heads : int, optional
        Attention heads per block (default 4); must divide ``d_model``.
    d_mlp : int, optional
        MLP hidden neurons per block (default 128).
    patch_size, patch_stride : int, optional
        Kernel and stride of the patch convolution (defaults 4 and 2).
    n_classes : int, optional
        Number of logits (default 10).
    """

    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    d_mlp: int = 128
    patch_size: int = 4
    patch_stride: int = 2
    n_classes: int = 10

    @property
    def grid(self) -> int:
        """Patches per side (8x8 input, padding (patch_size - patch_stride) // 2)."""
        pad = (self.patch_size - self.patch_stride) // 2
        return (8 + 2 * pad - self.patch_size) // self.patch_stride + 1

    @property
    def n_positions(self) -> int:
        """CLS token plus patches."""
        return 1 + self.grid**2


class Attention(nn.Module):
    """Multi-head self-attention; ``pattern`` (an identity module) outputs the N x H x T x T probabilities.

    The softmax is a module (``softmax``) so that module hooks reach it (RelP's AH-rule detaches its output).

    Parameters
    ----------
    d_model : int
        Width of the residual stream.
    n_heads : int
        Number of heads; must divide ``d_model`` (else :class:`ConfigError`).
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.softmax = nn.Softmax(dim=-1)
        self.pattern = nn.Identity()
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output ``N x T x d_model`` (no causal mask).

        Parameters
        ----------
        x : torch.Tensor
            Token activations ``N x T x d_model``.
        """
        batch, positions, d_model = x.shape
        d_head = d_model // self.n_heads
        q, k, v = self.qkv(x).view(batch, positions, 3, self.n_heads, d_head).permute(2, 0, 3, 1, 4)
        pattern = self.pattern(self.softmax(q @ k.transpose(-1, -2) / d_head**0.5))
        z = (pattern @ v).transpose(1, 2).reshape(batch, positions, d_model)
        return self.out(z)


class MLP(nn.Module):
    """``fc1`` -> ``act`` (GELU; its outputs are the hidden neurons) -> ``fc2``.

    Parameters
    ----------
    d_model : int
        Width of the residual stream.
    d_mlp : int
        Hidden neurons.
    """

    def __init__(self, d_model: int, d_mlp: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_mlp)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d_mlp, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``fc2(gelu(fc1(x)))``.

        Parameters
        ----------
        x : torch.Tensor
            Token activations ``N x T x d_model``.
        """
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``.

    Parameters
    ----------
    cfg : DigitsViTConfig
        Sizes of the block (``d_model``, ``n_heads``, ``d_mlp``).
    """

    def __init__(self, cfg: DigitsViTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.d_mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream after the block.

        Parameters
        ----------
        x : torch.Tensor
            Residual stream ``N x T x d_model``.
        """
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TokenEmbed(nn.Module):
    """Prepends the CLS token to the patch tokens and adds the position embedding (N x T x d_model).

    Parameters
    ----------
    cfg : DigitsViTConfig
        Sizes (``d_model`` and the number of positions).
    """

    def __init__(self, cfg: DigitsViTConfig):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.n_positions, cfg.d_model))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Tokens ``N x T x d_model``: CLS, then the patches in row-major order, plus positions.

        Parameters
        ----------
        patches : torch.Tensor
            Patch-convolution output ``N x d_model x grid x grid``.
        """
        tokens = patches.flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return tokens + self.pos_embed


class DigitsViT(nn.Module):
    """A 4-block ViT for 1 x 8 x 8 digit images; logits from the CLS token (position 0). See the module doc.

    Parameters
    ----------
    cfg : DigitsViTConfig, optional
        The architecture; None: :class:`DigitsViTConfig` defaults.
    """

    def __init__(self, cfg: DigitsViTConfig | None = None):
        super().__init__()
        self.cfg = cfg or DigitsViTConfig()
        c = self.cfg
        self.patch_embed = nn.Conv2d(1, c.d_model, c.patch_size, c.patch_stride, (c.patch_size - c.patch_stride) // 2)
        self.embed = TokenEmbed(c)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.n_layers)])
        self.ln_final = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.n_classes)
        self.class_names = list(DIGIT_CLASSES)
        nn.init.normal_(self.embed.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``N x n_classes`` from the CLS token.

        Parameters
        ----------
        x : torch.Tensor
            Image batch ``N x 1 x 8 x 8`` (from :class:`DigitsPreprocess`); other shapes raise :class:`DimensionError`.
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise DimensionError(f"expected a batch N x 1 x 8 x 8 (use the preprocess), got {tuple(x.shape)}")
        h = self.embed(self.patch_embed(x))
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_final(h)[:, 0])


# -------------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe: AdamW with a one-cycle schedule, random 1-pixel shifts (zero padded) as augmentation.

    Parameters
    ----------
    epochs : int, optional
        Passes over the training images (default 60).
    batch_size : int, optional
        Images per step (default 128).
    lr : float, optional
        Peak learning rate of the one-cycle schedule (default 3e-3).
    weight_decay : float, optional
        AdamW weight decay (default 0.05).
    max_shift : int, optional
        Largest random shift in pixels, the same for the whole batch (default 1; 0 disables it).
    """

    epochs: int = 60
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    max_shift: int = 1


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Train on one thread so that the result is bit-identical whatever the machine's thread settings."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _shift(batch: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    if max_shift <= 0:
        return batch
    padded = F.pad(batch, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + 8, dx : dx + 8]


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` (N x 1 x 8 x 8) that ``model`` classifies as ``labels``.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; evaluated in eval mode, its training mode is restored afterwards.
    images : torch.Tensor
        Image batch ``N x 1 x 8 x 8``.
    labels : torch.Tensor
        True labels ``N``.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = (model(images).argmax(-1) == labels).float().mean().item()
    model.train(was_training)
    return correct


def train_digits_vit(
    seed: int = 0, cfg: DigitsViTConfig | None = None, train: TrainConfig | None = None, progress: bool = True
) -> tuple[DigitsViT, dict[str, Any]]:
    """Train a :class:`DigitsViT` on the train part of :func:`load_digits_split` (deterministic per ``seed``).

    Returns the model (CPU, eval mode) and metrics ``{"test_accuracy", "train_accuracy", "final_loss"}``.

    Parameters
    ----------
    seed : int, optional
        Seed of the initialisation and of the batch order and shifts (default 0).
    cfg : DigitsViTConfig, optional
        The architecture; None: defaults.
    train : TrainConfig, optional
        The recipe; None: defaults.
    progress : bool, optional
        Show a progress bar over epochs (default True).
    """
    from interp._progress import tqdm

    cfg, train = cfg or DigitsViTConfig(), train or TrainConfig()
    split = load_digits_split()
    preprocess = DigitsPreprocess()
    x_train, y_train = preprocess(split.train_images), torch.from_numpy(split.train_labels.copy())
    x_test, y_test = preprocess(split.test_images), torch.from_numpy(split.test_labels.copy())
    with _single_thread():
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = DigitsViT(cfg)
        optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        steps_per_epoch = -(-len(x_train) // train.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=train.lr, total_steps=train.epochs * steps_per_epoch, pct_start=0.1
        )
        model.train()
        loss = torch.tensor(float("nan"))
        for _ in tqdm(range(train.epochs), desc="training digits-vit", disable=not progress, leave=False):
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(x_train), train.batch_size):
                index = order[start : start + train.batch_size]
                batch = _shift(x_train[index], train.max_shift, generator)
                loss = F.cross_entropy(model(batch), y_train[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        model.eval()
        metrics = {
            "test_accuracy": accuracy(model, x_test, y_test),
            "train_accuracy": accuracy(model, x_train, y_train),
            "final_loss": float(loss.item()),
        }
    return model, metrics


# --------------------------------------------------------------------------------------------------- loading


def _cache_path(seed: int, cfg: DigitsViTConfig, train: TrainConfig) -> Path:
    spec = json.dumps({"version": FORMAT_VERSION, "model": asdict(cfg), "train": asdict(train),
                       "split": [SPLIT_SEED, TEST_FRACTION]}, sort_keys=True)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:10]
    return cache_dir("models", "digits-vit") / f"digits-vit-seed{seed}-{digest}.pt"


def _load_or_train(seed: int, cfg: DigitsViTConfig, train: TrainConfig, retrain: bool) -> DigitsViT:
    path = _cache_path(seed, cfg, train)
    if path.exists() and not retrain:
        from ..checks import cache_fix, reading

        with reading(path, "cached digits-vit model", cache_fix(path) + " (or pass retrain=True)"):
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model = DigitsViT(cfg)
            model.load_state_dict(saved["state_dict"], strict=True)
            metrics = saved["metrics"]
    else:
        model, metrics = train_digits_vit(seed, cfg, train)
        payload = {"state_dict": model.state_dict(), "metrics": metrics, "seed": seed,
                   "config": asdict(cfg), "train": asdict(train), "version": FORMAT_VERSION}
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
    model.metrics = dict(metrics)
    model.test_accuracy = float(metrics["test_accuracy"])
    model.seed = seed
    return model.eval()


@functools.lru_cache(maxsize=8)
def _digits_vit(device: torch.device, seed: int, retrain: bool) -> tuple[DigitsViT, DigitsPreprocess]:
    model = _load_or_train(seed, DigitsViTConfig(), TrainConfig(), retrain).to(device).eval()
    return model, DigitsPreprocess(device=str(device))


def load_digits_vit(
    device: str | torch.device | None = None, seed: int = 0, retrain: bool = False
) -> tuple[DigitsViT, DigitsPreprocess]:
    """The ``digits-vit`` zoo model and its preprocess; trains it on first use (cached per seed).

    ``model.class_names`` is ``['0', ..., '9']``, ``model.test_accuracy`` the accuracy on
    ``load_digits_split().test_images``. ``retrain=True`` trains again and overwrites the cached file.

    Parameters
    ----------
    device : str or torch.device, optional
        Where to put the model and the preprocessed batches; None: CPU.
    seed : int, optional
        The model's seed (default 0); each seed is a separate cached model.
    retrain : bool, optional
        Train again and overwrite the cached file (default False).

    >>> model, preprocess = load_digits_vit()  # doctest: +SKIP
    >>> split = load_digits_split()
    >>> (model(preprocess(split.test_images)).argmax(-1).numpy() == split.test_labels).mean()  # doctest: +SKIP
    0.98
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an int, got {seed!r}")
    if retrain:
        _digits_vit.cache_clear()
    return _digits_vit(_device(device), seed, bool(retrain))
