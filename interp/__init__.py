"""interp: mechanistic interpretability for networks and brains.

One hook-based capture layer turns what a model computes, or what a brain recording measured, into
the same labeled tensor, :class:`Activations`; every analysis reads it.

>>> import interp
>>> model, tok = interp.models.load("induction-2l")            # doctest: +SKIP
>>> acts = interp.capture(model, ["a b c a b c"], sites="blocks.*.attn.hook_pattern")  # doctest: +SKIP
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .capture import capture  # noqa: E402  (the function shadows the submodule name on purpose)
from .errors import (
    ConfigError,
    CorruptFileError,
    DataNotFoundError,
    DimensionError,
    FingerprintError,
    InputTypeError,
    InterpError,
    MismatchError,
    MissingDependencyError,
    NaNError,
    SchemaError,
    SiteError,
    StorageError,
    StoreLockedError,
)
from .tensor import Activations, concat

__all__ = [
    "Activations",
    "concat",
    "capture",
    "InterpError",
    "DimensionError",
    "SiteError",
    "InputTypeError",
    "MismatchError",
    "NaNError",
    "SchemaError",
    "ConfigError",
    "MissingDependencyError",
    "DataNotFoundError",
    "CorruptFileError",
    "StoreLockedError",
    "FingerprintError",
    "StorageError",
]


def __getattr__(name: str):
    # Heavy submodules load on first use so `import interp` stays fast.
    import importlib

    if name in {"models", "data", "store", "decompose", "label", "similarity", "report", "cli", "capture_plan",
                "stats"}:
        return importlib.import_module(f".{name}", __name__)
    if name == "ActivationStore":
        from .store import ActivationStore

        return ActivationStore
    if name == "compare":
        from .similarity.compare import compare

        return compare
    raise AttributeError(f"module 'interp' has no attribute {name!r}")
