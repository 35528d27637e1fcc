"""Errors raised by interp, probes and patching.

Every error a user can trigger with bad input is a subclass of :class:`InterpError`, so
``except interp.InterpError`` catches all of them. Messages say what was expected and what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InterpError(Exception):
    """Base class of every error raised for bad input or a bad environment."""


class DimensionError(InterpError, ValueError):
    """Wrong dims, shapes or sizes (e.g. an axis name that does not exist)."""


class SiteError(InterpError, KeyError):
    """A hook name or module path that the model does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class InputTypeError(InterpError, TypeError):
    """Inputs of a type that the function cannot use."""


class UnsupportedInputError(InputTypeError, ValueError):
    """Input values of a kind an estimator cannot fit (complex numbers); also a ``ValueError``, as scikit-learn's
    estimator checks expect."""


class MismatchError(InterpError, ValueError):
    """Two objects that should line up (stimuli, lengths, ids) do not."""


class NaNError(InterpError, ValueError):
    """NaN or infinite values where finite numbers are needed."""


class SchemaError(InterpError, ValueError):
    """A store, file or config whose schema differs from what was expected."""


class ConfigError(InterpError, ValueError):
    """An invalid parameter or configuration value (unknown key, bad range)."""


class MissingDependencyError(InterpError, ImportError):
    """An optional package is not installed."""


class DataNotFoundError(InterpError, FileNotFoundError):
    """A data set or model file that is not on disk (and cannot be downloaded offline)."""


class CorruptFileError(SchemaError):
    """A file whose contents disagree with what was recorded when it was written: shorter or longer than
    its manifest says, another dtype or shape, a checksum that does not match, or unreadable bytes (a
    :class:`SchemaError`, like any corrupt or foreign file)."""


class StoreLockedError(InterpError, RuntimeError):
    """An activation store that another writer holds (the message names the holder), or whose distributed
    job never admitted this rank."""


class FingerprintError(SchemaError):
    """A store resumed or rerun with other inputs, model, sites, positions or dtype than it was made from."""


class ExplainerError(InterpError, RuntimeError):
    """An explainer (or a judge) could not produce an answer (endpoint down, timeout, unusable reply)."""


class StorageError(InterpError, OSError):
    """A file that cannot be written: a full disk, a read-only or unwritable location."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look most like ``name`` (for 'did you mean' hints).

    Parameters
    ----------
    name : str
        The name that was not found.
    candidates : Iterable[str]
        The names that exist.
    n : int
        At most this many suggestions, best first (``difflib`` similarity >= 0.4).
    """
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.4)


def require(module: str, pip_name: str | None = None, extra: str | None = None):
    """Import an optional dependency or raise :class:`MissingDependencyError` with the pip command.

    Parameters
    ----------
    module : str
        The module to import (``"sklearn.linear_model"``).
    pip_name : str, optional
        The package that provides it, for the hint (default the module's top-level name).
    extra : str, optional
        The ``interp[extra]`` that installs it, for the hint.

    Returns
    -------
    module
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pkg = pip_name or module.split(".")[0]
        hint = f"pip install {pkg}" if extra is None else f"pip install 'interp[{extra}]' (or: pip install {pkg})"
        raise MissingDependencyError(f"{module!r} is needed for this feature but is not installed: {hint}") from exc


class GroupsError(ConfigError):
    """Group (trial, subject) labels that cannot be used: missing, NaN or negative (a negative code usually marks
    samples outside every trial, which must be dropped before a test, not treated as one more trial)."""


class InvalidNullError(ConfigError):
    """A null distribution that is invalid or degenerate for the design (e.g. a shift within trials of a value
    that is constant within each trial, which leaves it unchanged); the message names the null to use."""


def named_array_error(exc: Exception) -> InterpError:
    """scikit-learn's ``check_array``/``validate_data`` error as the named error of the same message.

    ``TypeError`` (sparse input, strings) -> :class:`InputTypeError`; NaN/inf -> :class:`NaNError`; complex
    values -> :class:`UnsupportedInputError`; any other ``ValueError`` (1-D, empty, wrong number of features)
    -> :class:`DimensionError`. Raise it ``from exc``.

    Parameters
    ----------
    exc : Exception
        The ``TypeError`` or ``ValueError`` that scikit-learn's validation raised.
    """
    msg = str(exc)
    if isinstance(exc, TypeError):
        return InputTypeError(f"{msg} (pass a dense numeric array, tensor or Activations)")
    if "NaN" in msg or "infinity" in msg:
        return NaNError(f"{msg} (drop or impute those values first)")
    if "omplex" in msg:
        return UnsupportedInputError(f"{msg} (pass real values, e.g. the magnitude)")
    return DimensionError(msg)
