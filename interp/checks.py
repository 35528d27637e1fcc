"""Checks at public boundaries: bad input becomes a named :class:`~interp.errors.InterpError`.

Each helper raises one error class with a message that says what was expected and what to do, so that
capture, patching, similarity and studies report one case in one way (issue 14: "no silent numbers",
"every error named"). None of them changes valid input; they only refuse what would otherwise crash
deep inside torch with a raw exception or, worse, return a wrong number.

>>> import torch
>>> check_tokens(torch.tensor([[0, 5, 9]]), d_vocab=10).shape
torch.Size([1, 3])
>>> check_tokens(torch.tensor([[0, 50]]), d_vocab=10)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
interp.errors.DimensionError: tokens hold id 50 at (0, 1), outside the model's vocabulary 0..9; ...
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from .errors import (
    ConfigError,
    CorruptFileError,
    DataNotFoundError,
    DimensionError,
    InputTypeError,
    InterpError,
    MismatchError,
    NaNError,
    SchemaError,
    StorageError,
)

__all__ = ["check_tokens", "model_vocab", "fit_context", "check_length", "check_finite", "check_varied",
           "reading", "read_json", "cache_fix", "storage_error", "make_dir", "named_os_errors", "check_metric_value"]

F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------------------------------------ tokens
def model_vocab(model: Any) -> int | None:
    """The vocabulary size of a bridge (``cfg.d_vocab``), or None when the model has none.

    Parameters
    ----------
    model : object
        A bridge (or anything with ``cfg.d_vocab``); a missing or non-positive ``d_vocab`` gives None.
    """
    d_vocab = getattr(getattr(model, "cfg", None), "d_vocab", None)
    return int(d_vocab) if isinstance(d_vocab, int) and d_vocab > 0 else None


def check_tokens(tokens: Any, d_vocab: int | None = None, what: str = "tokens") -> torch.Tensor:
    """Token ids must be an integer tensor ``(batch, pos)`` with every id in ``[0, d_vocab)``.

    Raises :class:`InputTypeError` for float/bool tensors (they are not token ids) and
    :class:`DimensionError` for other shapes or ids outside the vocabulary (the embedding would
    fail with a bare ``IndexError``, or on GPU with a device-side assert).

    Parameters
    ----------
    tokens : torch.Tensor
        Token ids, an integer tensor ``(batch, pos)``.
    d_vocab : int, optional
        Vocabulary size; None skips the range check.
    what : str, optional
        Name of the input in the error messages (default ``"tokens"``).
    """
    if not isinstance(tokens, torch.Tensor):
        raise InputTypeError(f"{what} must be a tensor of token ids, got {type(tokens).__name__}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise InputTypeError(f"{what} must be integer token ids, got a {tokens.dtype} tensor; tokenize texts with "
                             "the model's tokenizer (model.to_tokens or interp.capture.tokenize), or cast ids with .long()")
    if tokens.ndim != 2:
        raise DimensionError(f"{what} must be token ids of shape (batch, pos), got shape {tuple(tokens.shape)}")
    if d_vocab is not None and tokens.numel():
        bad = (tokens < 0) | (tokens >= d_vocab)
        if bool(bad.any()):
            where = tuple(int(i) for i in bad.nonzero()[0])
            raise DimensionError(
                f"{what} hold id {int(tokens[where])} at {where}, outside the model's vocabulary 0..{d_vocab - 1}; "
                f"{int(bad.sum())} id(s) in all are out of range. Tokenize with this model's own tokenizer (ids from another "
                "model's vocabulary do not fit)")
    return tokens


def fit_context(rows: Sequence[torch.Tensor], n_ctx: int | None, truncate: bool = False,
                what: str = "texts") -> list[torch.Tensor]:
    """Refuse token rows longer than the model's context ``n_ctx``, or cut them with a warning.

    Without ``truncate`` a row longer than ``n_ctx`` raises :class:`DimensionError` (a model cut to its
    context silently reads only the first ``n_ctx`` tokens); with ``truncate=True`` the rows are cut to
    ``n_ctx`` and one ``UserWarning`` says how many were cut.

    Parameters
    ----------
    rows : sequence of torch.Tensor
        Token rows, one 1-D tensor per text.
    n_ctx : int or None
        The model's context length; None or 0 accepts any length.
    truncate : bool, optional
        Cut long rows to ``n_ctx`` with a warning instead of raising (default False).
    what : str, optional
        Name of the rows in the messages (default ``"texts"``).
    """
    rows = list(rows)
    if not n_ctx:
        return rows
    long = [i for i, r in enumerate(rows) if len(r) > n_ctx]
    if not long:
        return rows
    worst = max(long, key=lambda i: len(rows[i]))
    if not truncate:
        raise DimensionError(
            f"{len(long)} of {len(rows)} {what} are longer than the model's context of {n_ctx} tokens (the longest, "
            f"#{worst}, has {len(rows[worst])}); shorten or split them, or pass truncate=True to keep only their "
            f"first {n_ctx} tokens")
    warnings.warn(f"truncate=True: cut {len(long)} of {len(rows)} {what} to the model's context of {n_ctx} tokens "
                  f"(the longest had {len(rows[worst])})", UserWarning, stacklevel=3)
    return [r[:n_ctx] for r in rows]


# --------------------------------------------------------------------------------------- shapes, values
def check_length(values: Sequence[Any] | None, n: int | None, what: str, expected: str = "one per input") -> None:
    """``values`` (when given) must have ``n`` entries; else :class:`MismatchError`.

    Parameters
    ----------
    values : sequence or None
        The per-input values; None skips the check.
    n : int or None
        The expected number of entries; None skips the check.
    what : str
        Name of ``values`` in the error message.
    expected : str, optional
        What to give instead, in the error message (default ``"one per input"``).
    """
    if values is None or n is None:
        return
    if len(values) != n:
        raise MismatchError(f"{what} has {len(values)} entries but there are {n} inputs; give {expected}")


def check_finite(x: torch.Tensor, what: str, fix: str = "") -> torch.Tensor:
    """Raise :class:`NaNError` if ``x`` holds NaN or inf (counting them); returns ``x``.

    Parameters
    ----------
    x : torch.Tensor
        The tensor to check.
    what : str
        Its name in the error message.
    fix : str, optional
        Advice appended to the message.
    """
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise NaNError(f"{what} holds {int(bad.sum())} NaN/inf value(s) of {x.numel()}" + (f"; {fix}" if fix else ""))
    return x


def check_varied(X: torch.Tensor, what: str, rows: str = "rows", why: str = "", fix: str = "",
                 centre: bool = True) -> torch.Tensor:
    """Raise :class:`NaNError` naming every row of ``X`` (2-D) that is constant (or all zero with
    ``centre=False``): a correlation, cosine or normalised score of such a row is undefined (0/0).

    Parameters
    ----------
    X : torch.Tensor
        2-D tensor; each row is checked.
    what : str
        Name of ``X`` in the error message.
    rows : str, optional
        What the rows are, in the message (default ``"rows"``).
    why, fix : str, optional
        Why a constant row is a problem and what to do, appended to the message.
    centre : bool, optional
        True (default): refuse constant rows; False: refuse only all-zero rows.
    """
    spread = (X - X.mean(1, keepdim=True)) if centre else X
    scale = float(X.abs().max()) if X.numel() else 0.0
    flat = torch.linalg.vector_norm(spread, dim=1) <= 1e-12 * max(scale, 1.0) * max(X.shape[1], 1) ** 0.5
    if bool(flat.any()):
        idx = flat.nonzero()[:, 0].tolist()
        kind = "constant" if centre else "all zero"
        raise NaNError(f"{what}: {len(idx)} of {X.shape[0]} {rows} are {kind} (at index {idx[:10]}"
                       + (" ..." if len(idx) > 10 else "") + ")" + (f"; {why}" if why else "")
                       + (f"; {fix}" if fix else ""))
    return X


def check_metric_value(value: torch.Tensor, metric: Any, output: Any = None) -> torch.Tensor:
    """A metric's value must be finite: NaN or inf raises :class:`NaNError` (it would fill patching cells,
    attributions or gradients quietly). ``output``: the model output it was computed from, to say whether
    the model or the metric produced the NaN.

    Parameters
    ----------
    value : torch.Tensor
        The metric's value (any shape); returned unchanged when finite.
    metric : object
        The metric, named in the message by its ``name`` or ``__name__``.
    output : torch.Tensor, optional
        The model output the value came from; None: the message assumes finite outputs.
    """
    if bool(torch.isfinite(value.detach()).all()):
        return value
    name = getattr(metric, "name", getattr(metric, "__name__", "the metric"))
    finite = not isinstance(output, torch.Tensor) or bool(torch.isfinite(output.detach()).all())
    flat = value.detach().reshape(-1)
    bad = (~torch.isfinite(flat)).nonzero()[:, 0]
    where = f" (element {int(bad[0])} of {flat.numel()}; {len(bad)} not finite)" if flat.numel() > 1 else ""
    raise NaNError(f"metric {name} returned {float(flat[bad[0]])}{where} on " + (
        "finite model outputs; fix the metric (a log of 0, a division by zero, a mean over nothing?)" if finite
        else "model outputs that hold NaN/inf; check the inputs and the intervention (the model itself returned "
             "non-finite logits)"))


# --------------------------------------------------------------------------------------------- files
def _read_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, ValueError, KeyError, TypeError, AttributeError, IndexError,
                                         RuntimeError, EOFError, pickle.UnpicklingError]
    with contextlib.suppress(ImportError):
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    return tuple(errors)


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str, fix: str = "") -> Iterator[None]:
    """Turn errors raised while reading ``path`` into :class:`~interp.errors.CorruptFileError` (a
    :class:`SchemaError`: corrupt, truncated or foreign file) or :class:`DataNotFoundError` (missing file),
    naming the file, the cause and ``fix``.

    Keep the block small: only the reading and parsing of the file.

    Parameters
    ----------
    path : str or os.PathLike
        The file being read, named in the error.
    what : str
        What the file is, in the error message (e.g. ``"saved Activations"``).
    fix : str, optional
        Advice appended to the :class:`CorruptFileError` message.

    >>> with reading("acts.safetensors", "saved Activations"):     # doctest: +SKIP
    ...     data = safe_open(...)
    """
    try:
        yield
    except InterpError:
        raise
    except FileNotFoundError as exc:
        raise DataNotFoundError(f"{what} {str(path)!r} does not exist; check the path") from exc
    except _read_errors() as exc:
        text = str(exc)
        if isinstance(exc, RuntimeError) and any(w in text for w in ("CUDA", "device", "MPS", "out of memory")):
            raise ConfigError(f"{what} {str(path)!r} could not be placed on the requested device ({text[:200]}); "
                              "load it on the CPU or choose an available device") from exc
        cause = f"{type(exc).__name__}: {exc}".strip()
        raise CorruptFileError(f"{what} {str(path)!r} is corrupt, truncated or not the expected kind of file "
                               f"({cause[:300]})" + (f"; {fix}" if fix else "")) from exc


def cache_fix(*paths: str | os.PathLike) -> str:
    """The advice for a damaged file in the model cache: delete it, it is rebuilt on the next load."""
    names = " ".join(repr(str(p)) for p in paths)
    return f"delete it (rm -r {names}); the next load rebuilds the cache from scratch"


def read_json(path: str | os.PathLike, what: str = "JSON file", fix: str = "", kind: type = dict) -> Any:
    """Parse a JSON file; a corrupt or truncated file, or one whose top level is not ``kind``, raises
    :class:`SchemaError` (a missing one :class:`DataNotFoundError`).

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.
    what : str, optional
        What the file is, in the error messages (default ``"JSON file"``).
    fix : str, optional
        Advice appended to the error messages.
    kind : type or None, optional
        Expected type of the top-level value (default ``dict``); None accepts any.
    """
    with reading(path, what, fix):
        value = json.loads(Path(path).read_text())
    if kind is not None and not isinstance(value, kind):
        raise SchemaError(f"{what} {str(path)!r} holds a JSON {type(value).__name__}, expected a {kind.__name__}"
                          + (f"; {fix}" if fix else ""))
    return value


def storage_error(exc: OSError, path: str | os.PathLike, fix: str = "") -> StorageError:
    """A :class:`StorageError` for an ``OSError`` raised while writing ``path`` (disk full, read-only, ...).

    Parameters
    ----------
    exc : OSError
        The error raised while writing; its ``errno`` is copied onto the returned error.
    path : str or os.PathLike
        The path being written.
    fix : str, optional
        Advice appended to the message.
    """
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        message = (f"cannot write {str(path)!r}: no space left on the device ({exc.strerror or exc}); free some space "
                   "or write somewhere else (a store or study resumes where it stopped)")
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        message = (f"cannot write {str(path)!r}: the location is read-only or not writable ({exc.strerror or exc}); "
                   "choose a folder you can write to")
    else:
        message = f"cannot write {str(path)!r}: {exc}"
    err = StorageError(message + (f"; {fix}" if fix else ""))
    err.errno = code
    return err


def make_dir(path: str | os.PathLike, fix: str = "") -> Path:
    """``mkdir -p path``; an ``OSError`` (read-only, full, not a folder) becomes :class:`StorageError`.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to create (with its parents; an existing folder is fine).
    fix : str, optional
        Advice appended to the :class:`StorageError` message.
    """
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, path, fix) from exc
    return Path(path)


def named_os_errors(fn: F) -> F:
    """Decorator for writers whose first argument is the path: an ``OSError`` becomes :class:`StorageError`.

    Parameters
    ----------
    fn : callable
        The writer to wrap; its first positional argument must be the path.
    """

    @functools.wraps(fn)
    def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(path, *args, **kwargs)
        except InterpError:
            raise
        except OSError as exc:
            raise storage_error(exc, path) from exc

    return wrapper  # type: ignore[return-value]
