"""The schema of study files (``interp study run``), checked in full before anything runs.

:func:`validate` checks every key of a parsed study file: allowed keys, value types (an ``int`` is not a
string, a list is not empty), the fields of ``site`` templates, and the checks across keys (a metric that
needs answers, a sweep that needs corrupted inputs). :func:`check_sites` then checks, once the model is
loaded and before the first intervention, that every site a grid expands to and every swept site kind
exist. :func:`load_progress` reads ``progress.csv`` for ``--resume``, discarding a row cut short by a crash.
Every problem is a :class:`~interp.errors.ConfigError` that names the key and says what was expected.

>>> validate({"model": "induction-2l", "data": {"kind": "induction", "n": 8}, "metric": {"name": "logit_diff"},
...           "grid": [{"intervention": "zero", "site": "blocks.{layer}.attn.hook_z", "layer": [0, 1]}]})["model"]
'induction-2l'
"""

from __future__ import annotations

import io
import math
import os
import string
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from interp.errors import ConfigError, SchemaError, closest

__all__ = ["validate", "check_sites", "load_progress", "SCHEMA", "INTERVENTIONS", "METRICS", "DATA_KINDS"]

INTERVENTIONS = ("zero", "mean", "resample", "scale", "clamp", "patch")
METRICS = ("logit_diff", "normalized_logit_diff", "probability", "log_probability", "kl", "loss")
DATA_KINDS = ("prompts", "tokens", "ioi", "induction")
SWEEP_AXES = ("layer", "pos", "head", "neuron", "unit")
GRID_AXES = ("layer", "head", "position", "unit", "factor", "value")  # list-valued grid keys: one row per combination
TEMPLATE_FIELDS = ("layer",)  # the grid keys a site template may use

Check = Callable[[Any, str], None]


# ------------------------------------------------------------------------------------------- value checks
def _fail(where: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{where} must be {expected}, got {value!r} ({type(value).__name__})")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# Bounds on everything a study allocates, checked before anything runs (a bigger value is a typo, and would die
# with a MemoryError or run for hours): inputs, grid rows, any index, and the size of a native model.
MAX_INPUTS = 100_000
MAX_ROWS = 100_000
MAX_INDEX = 1_000_000
MAX_SEED = 2**63 - 1
MAX_PARAMETERS = 2 * 10**9  # weights of a native model
NATIVE_SIZES = {"d_model": 1 << 16, "n_layers": 1024, "n_heads": 1024, "d_head": 1 << 14, "n_ctx": 1 << 17,
                "d_vocab": 1 << 20, "d_mlp": 1 << 18, "n_key_value_heads": 1024, "d_vocab_out": 1 << 20}


def integer(low: int | None = None, high: int | None = None) -> Check:
    """A check that a value is an integer (not a bool) within ``[low, high]``.

    Parameters
    ----------
    low, high : int, optional
        Inclusive bounds (default unbounded on that side).
    """
    def check(v: Any, where: str) -> None:
        if not _is_int(v) or (low is not None and v < low) or (high is not None and v > high):
            if _is_int(v) and high is not None:  # a number, but too large (or small)
                span = f" in [{low}, {high}]" if low is not None else f" <= {high}"
            else:
                span = f" >= {low}" if low is not None else ""
            raise _fail(where, "an integer" + span, v)
    return check


def number(v: Any, where: str) -> None:
    """Check that ``v`` is a finite int or float (not a bool, nan or inf).

    Parameters
    ----------
    v : Any
        The parsed TOML value to check.
    where : str
        Where the value sits in the study file (``"[data] n"``), for the error message.
    """
    if not _is_number(v):
        raise _fail(where, "a number", v)
    if not math.isfinite(v):
        raise _fail(where, "a number (finite, not nan or inf)", v)


def text(v: Any, where: str) -> None:
    """Check that ``v`` is a non-empty string.

    Parameters
    ----------
    v : Any
        The parsed TOML value to check.
    where : str
        Where the value sits in the study file (``"[data] n"``), for the error message.
    """
    if not isinstance(v, str) or not v:
        raise _fail(where, "a non-empty string", v)


def choice(options: tuple[str, ...]) -> Check:
    """A check that a value is one of ``options`` (the error suggests the closest one).

    Parameters
    ----------
    options : tuple of str
        The allowed values.
    """
    def check(v: Any, where: str) -> None:
        if v not in options:
            hint = closest(v, options) if isinstance(v, str) else []
            raise ConfigError(f"{where} must be one of {list(options)}, got {v!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return check


def list_of(item: Check, what: str, scalar: bool = False) -> Check:
    """A check that a value is a non-empty list whose items pass ``item`` (or, with ``scalar``, one bare item).

    Parameters
    ----------
    item : Check
        The check each item must pass.
    what : str
        What the items are, for the error message (``"integers >= 0"``).
    scalar : bool
        Also accept one bare item in place of a list (``layer = 3`` as well as ``layer = [3]``).
    """
    def check(v: Any, where: str) -> None:
        """Check that ``v`` is a non-empty list of valid items (or, where allowed, one bare item).

        Parameters
        ----------
        v : Any
            The parsed TOML value to check.
        where : str
            Where the value sits in the study file (``"[data] n"``), for the error message.
        """
        if scalar and not isinstance(v, list):
            item(v, where)
            return
        if not isinstance(v, list):
            raise _fail(where, f"a list of {what}", v)
        if not v:
            raise ConfigError(f"{where} is an empty list; give at least one of {what}"
                              + (" (an empty grid runs nothing)" if scalar else ""))
        for i, x in enumerate(v):
            item(x, f"{where}[{i}]")
    return check


def one_of(*checks: Check, expected: str) -> Check:
    """A check that a value passes at least one of ``checks``.

    Parameters
    ----------
    *checks : Check
        The alternatives, tried in order.
    expected : str
        What was expected, for the error message when none passes.
    """
    def check(v: Any, where: str) -> None:
        for c in checks:
            try:
                c(v, where)
                return
            except ConfigError:
                continue
        raise _fail(where, expected, v)
    return check


def table(schema: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    """A check that a value is a TOML table with only the keys of ``schema``, each passing its check.

    Parameters
    ----------
    schema : Mapping[str, Check]
        The allowed keys and each one's check; an unknown key is an error suggesting the closest one.
    required : tuple of str
        Keys that must be present.
    """
    def check(v: Any, where: str) -> None:
        if not isinstance(v, dict):
            raise _fail(where, "a table", v)
        for key in v:
            if key not in schema:
                hint = closest(str(key), schema)
                raise ConfigError(f"unknown key {key!r} in {where}; allowed: {sorted(schema)}"
                                  + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        for key in required:
            if key not in v:
                raise ConfigError(f"{where}: missing required key {key!r}")
        for key, value in v.items():
            schema[key](value, f"{where} {key}")
    return check


def tables(schema: Mapping[str, Check], required: tuple[str, ...], label: str) -> Check:
    """A check that a value is an array of tables (``[[label]]`` sections), each passing ``table(schema, required)``.

    Parameters
    ----------
    schema : Mapping[str, Check]
        The allowed keys of each table and each one's check.
    required : tuple of str
        Keys every table must have.
    label : str
        The section name (``"grid"``, ``"sweep"``), for the error messages (``[[grid]] #2``).
    """
    def check(v: Any, where: str) -> None:
        if not isinstance(v, list) or not all(isinstance(t, dict) for t in v):
            raise _fail(where, f"an array of tables ([[{label}]] sections)", v)
        for i, t in enumerate(v):
            table(schema, required)(t, f"[[{label}]] #{i + 1}")
    return check


# ------------------------------------------------------------------------------------------------ schema
INTS = list_of(integer(0, MAX_INDEX), "integers >= 0", scalar=True)
ANY_INTS = list_of(integer(-MAX_INDEX, MAX_INDEX), "integers", scalar=True)
NUMBERS = list_of(number, "numbers", scalar=True)
TOKEN_ROWS = list_of(list_of(integer(0, NATIVE_SIZES["d_vocab"]), "token ids (integers >= 0)"), "token rows")
ANSWERS = list_of(one_of(text, integer(0, NATIVE_SIZES["d_vocab"]), expected="a single-token string or a token id"),
                  "answers (strings or token ids)")


def model_spec(v: Any, where: str) -> None:
    """Check a ``model`` value: a zoo name, ``{ name = "..." }`` or ``{ native = { d_model = ..., ... } }``.

    Parameters
    ----------
    v : Any
        The parsed TOML value to check.
    where : str
        Where the value sits in the study file (``"[data] n"``), for the error message.
    """
    if isinstance(v, str):
        text(v, where)
        return
    table({"name": text, "native": _native})(v, where)
    if not ("name" in v or "native" in v):
        raise ConfigError(f"{where} table needs name = \"<zoo name>\" or native = {{...}}")


def _native(v: Any, where: str) -> None:
    """A native TransformerBridgeConfig: its sizes are positive and the model it builds is bounded."""
    if not isinstance(v, dict) or not v:
        raise _fail(where, "a non-empty table of TransformerBridgeConfig settings", v)
    for key, high in NATIVE_SIZES.items():
        if key in v:
            integer(1, high)(v[key], f"{where} {key}")
    if "seed" in v and v["seed"] is not None:
        integer(0, MAX_SEED)(v["seed"], f"{where} seed")
    d, layers, vocab = v.get("d_model", 1), v.get("n_layers", 1), v.get("d_vocab", 1)
    width = v.get("n_heads", 1) * v.get("d_head", 1)
    weights = layers * (4 * d * width + 2 * d * v.get("d_mlp", 4 * d)) + 2 * vocab * d + v.get("n_ctx", 1) * d
    if weights > MAX_PARAMETERS:
        raise ConfigError(f"{where}: a model of about {weights:,} weights (more than {MAX_PARAMETERS:,}); make it smaller")


DATA = {"kind": choice(DATA_KINDS), "n": integer(1, MAX_INPUTS), "seed": integer(0, MAX_SEED),
        "period": integer(1, 10_000), "query": integer(1, 10_000),
        "templates": list_of(text, "template strings"),
        "clean": one_of(list_of(text, "prompts"), TOKEN_ROWS, expected="a non-empty list of prompts or token rows"),
        "corrupted": one_of(list_of(text, "prompts"), TOKEN_ROWS, expected="a non-empty list of prompts or token rows"),
        "correct": ANSWERS, "incorrect": ANSWERS}
METRIC = {"name": choice(METRICS), "position": integer(-MAX_INDEX, MAX_INDEX)}
GRID = {"intervention": choice(INTERVENTIONS), "site": text, "name": text, "layer": INTS, "head": INTS,
        "unit": INTS, "position": ANY_INTS, "factor": NUMBERS, "value": NUMBERS}
SWEEP = {"site": text, "by": list_of(choice(SWEEP_AXES), f"axes from {list(SWEEP_AXES)}"),
         "direction": choice(("denoise", "noise")), "layers": list_of(integer(0, MAX_INDEX), "layer indices"),
         "name": text}


def output(v: Any, where: str) -> None:
    """The output folder: a relative path inside the folder the study runs from (no ``..``, not absolute).

    Parameters
    ----------
    v : Any
        The ``output`` value of the study file.
    where : str
        Where it stands in the file, for the error message.
    """
    text(v, where)
    parts = Path(v).parts
    if Path(v).is_absolute() or ".." in parts or v.startswith("~"):
        raise ConfigError(f"{where} {v!r} points outside the folder the study runs from; give a relative folder such "
                          "as output = \"runs/my-study\" (or pass --out to write elsewhere)")


SCHEMA = {"title": text, "model": model_spec, "output": output, "batch_size": integer(1, MAX_INPUTS),
          "seed": integer(0, MAX_SEED),
          "data": table(DATA), "metric": table(METRIC, ("name",)),
          "grid": tables(GRID, ("intervention", "site"), "grid"), "sweep": tables(SWEEP, ("site",), "sweep")}

DATA_KEYS_OF_KIND = {"induction": {"n", "seed", "period", "query"}, "ioi": {"n", "seed", "templates"},
                     "prompts": {"clean", "corrupted", "correct", "incorrect", "seed"},
                     "tokens": {"clean", "corrupted", "correct", "incorrect", "seed"}}
METRIC_NEEDS = {"logit_diff": ("correct", "incorrect"), "normalized_logit_diff": ("correct", "incorrect", "corrupted"),
                "probability": ("correct",), "log_probability": ("correct",)}


# ------------------------------------------------------------------------------------------ cross checks
def _template_fields(site: str, where: str) -> set[str]:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(site) if f is not None}
    except ValueError as exc:
        raise ConfigError(f"{where} site {site!r} is not a valid template ({exc}); write fields as {{layer}}") from exc
    for f in fields:
        if f not in TEMPLATE_FIELDS:
            hint = closest(f, TEMPLATE_FIELDS)
            raise ConfigError(f"{where} site {site!r} uses the field {{{f}}}, but only {{layer}} is filled in (from "
                              "the grid's layer list)" + (f"; did you mean {{{hint[0]}}}?" if hint else ""))
    return fields


def _check_grid(grid: dict[str, Any], where: str) -> None:
    fields = _template_fields(grid["site"], where)
    if "layer" in fields and "layer" not in grid:
        raise ConfigError(f"{where} site {grid['site']!r} uses {{layer}} but the grid has no layer = [...] list")
    if "layer" in grid and "layer" not in fields:
        raise ConfigError(f"{where} has layer = {grid['layer']!r} but its site {grid['site']!r} has no {{layer}} "
                          "field, so every row would change the same site; write the site as blocks.{layer}....")
    for key, needs in (("factor", "scale"), ("value", "clamp")):
        if key in grid and grid["intervention"] != needs:
            raise ConfigError(f"{where}: {key} is only used by intervention = {needs!r}, not {grid['intervention']!r}")


def _check_data(data: dict[str, Any], config: dict[str, Any], where: str) -> None:
    kind = data.get("kind", "prompts")
    extra = sorted(set(data) - {"kind"} - DATA_KEYS_OF_KIND[kind])
    if extra:
        raise ConfigError(f"{where} [data] kind = {kind!r} does not use {extra}; its keys are "
                          f"{sorted(DATA_KEYS_OF_KIND[kind])}")
    generated = kind in ("ioi", "induction")
    if not generated:
        if "clean" not in data:
            raise ConfigError(f"{where} [data] kind = {kind!r} needs clean = [...]")
        for key in ("clean", "corrupted"):
            if key in data:
                rows = data[key]
                is_text = all(isinstance(r, str) for r in rows)
                if is_text != (kind == "prompts"):
                    raise ConfigError(f"{where} [data] {key}: kind = {kind!r} takes "
                                      + ("prompt strings" if kind == "prompts" else "lists of token ids"))
                if kind == "tokens" and len({len(r) for r in rows}) != 1:
                    raise ConfigError(f"{where} [data] {key}: token rows must all have the same length, got "
                                      f"{sorted({len(r) for r in rows})}")
        n = len(data["clean"])
        if "corrupted" in data and len(data["corrupted"]) != n:
            raise ConfigError(f"{where} [data] corrupted has {len(data['corrupted'])} rows but clean has {n}; give "
                              "one corrupted input per clean input")
        for key in ("correct", "incorrect"):
            if key in data and len(data[key]) not in (1, n):
                raise ConfigError(f"{where} [data] {key} has {len(data[key])} answers for {n} inputs; give one per "
                                  "input (or one for all)")
    metric = config["metric"]["name"]
    for key in METRIC_NEEDS.get(metric, ()):
        if not generated and key not in data:
            raise ConfigError(f"{where}: metric {metric!r} needs [data] {key} = [...]")
    needs_corrupted = [f"[[grid]] #{i + 1}" for i, g in enumerate(config.get("grid", [])) if g["intervention"] == "patch"]
    needs_corrupted += ["[[sweep]]"] if config.get("sweep") else []
    if needs_corrupted and not generated and "corrupted" not in data:
        raise ConfigError(f"{where}: {needs_corrupted[0]} patches in corrupted activations; add [data] corrupted = [...]")


def validate(config: Any, where: str = "study") -> dict[str, Any]:
    """Check a parsed study file against :data:`SCHEMA` and the rules across keys; returns it unchanged.

    Raises :class:`ConfigError` naming the key and what was expected (unknown keys, wrong types such as
    ``head = ["a"]`` or ``n = "eight"``, empty lists such as ``layer = []``, unknown template fields such as
    ``{lyr}``, a metric without the answers it needs).

    Parameters
    ----------
    config : dict
        The parsed study file (TOML as a dict).
    where : str
        A name for the file in error messages (its path, or ``"study"``).

    Returns
    -------
    dict
        ``config`` itself, unchanged.
    """
    if not isinstance(config, dict):
        raise _fail(where, "a table of settings", config)
    for key in ("model", "data", "metric"):
        if key not in config:
            raise ConfigError(f"{where}: missing required key {key!r}")
    table(SCHEMA)(config, where)
    if not config.get("grid") and not config.get("sweep"):
        raise ConfigError(f"{where}: nothing to run; add [[grid]] interventions and/or [[sweep]] patching sweeps")
    for i, grid in enumerate(config.get("grid", [])):
        _check_grid(grid, f"{where} [[grid]] #{i + 1}")
    rows = sum(math.prod(len(g[k]) if isinstance(g[k], list) else 1 for k in g if k in GRID_AXES)
               for g in config.get("grid", []))
    if rows > MAX_ROWS:
        raise ConfigError(f"{where}: the grids expand to {rows:,} interventions (more than {MAX_ROWS:,}); split the study")
    _check_data(config["data"], config, where)
    data = config["data"]
    if len(data.get("clean", ())) > MAX_INPUTS:
        raise ConfigError(f"{where} [data] clean has {len(data['clean']):,} inputs (more than {MAX_INPUTS:,})")
    return config


# ------------------------------------------------------------------------------------- with the model
def _listed(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _available_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def _check_memory(cfg: Any, n_rows: int | None, length: int | None) -> None:
    """Refuse a study whose one forward pass over all its inputs (logits kept, plus one layer's activations and
    attention pattern at a time) needs more than half of the memory available now."""
    if cfg is None or not n_rows or not length:
        return
    d, vocab = int(getattr(cfg, "d_model", 0) or 0), int(getattr(cfg, "d_vocab", 0) or 0)
    heads, mlp = int(getattr(cfg, "n_heads", 0) or 0), int(getattr(cfg, "d_mlp", 0) or 0)
    need = 4 * n_rows * length * (2 * vocab + 6 * d + 2 * mlp + 2 * heads * length)  # float32, clean and patched
    free = _available_bytes()
    if free is not None and need > free // 2:
        raise ConfigError(f"the study runs {n_rows:,} inputs of {length} tokens in one forward pass: about "
                          f"{need / 1e9:.1f} GB, more than half of the {free / 1e9:.1f} GB available. Use fewer inputs "
                          "([data] n or fewer prompts).")


def check_sites(model: Any, config: dict[str, Any], expand: Callable[[dict[str, Any]], list[dict[str, Any]]],
                length: int | None = None, n_rows: int | None = None, clean: Any = None) -> None:
    """Every site a grid expands to (``expand``: the study's grid expansion), every layer, head and (given the
    inputs' ``length``) position index, the metric's position and every swept site must exist on ``model``,
    and (given the ``clean`` inputs: one of them is run, stopping after the last site) every unit index must be
    below its site's width: checked before the first row runs (:class:`~interp.errors.SiteError` or :class:`ConfigError`).

    Parameters
    ----------
    model : torch.nn.Module
        The loaded model the study runs on.
    config : dict
        The validated study file (:func:`validate`).
    expand : Callable[[dict], list[dict]]
        The study's grid expansion: one ``[[grid]]`` table to its rows, each with a resolved ``site``.
    length : int, optional
        The inputs' number of token positions, for the position checks (skipped without it).
    n_rows : int, optional
        The number of clean inputs, for the memory estimate (skipped without it).
    clean : Any, optional
        The clean inputs; the first is run (up to the last site) to check ``unit`` indices against the
        sites' widths (skipped without it).
    """
    from interp import engine

    cfg = getattr(model, "cfg", None)
    n_heads, n_layers = getattr(cfg, "n_heads", None), getattr(cfg, "n_layers", None)

    def within(values: list[int], n: int | None, what: str, where: str, signed: bool = False) -> None:
        bad = [v for v in values if n is not None and not (-n if signed else 0) <= v < n]
        if bad:
            noun = what.split(" ")[0].rstrip("s") + "s"
            has = (f"the inputs have {n} positions ({-n}..{n - 1})" if signed else
                   f"the site has {n} units (0..{n - 1})" if noun == "units" else f"the model has {n} {noun} (0..{n - 1})")
            raise ConfigError(f"{where}: {what} {bad[:5]} out of range; {has}")

    for i, grid in enumerate(config.get("grid", [])):
        where = f"[[grid]] #{i + 1}"
        within(_listed(grid.get("layer", [])), n_layers, "layer", where)
        within(_listed(grid.get("head", [])), n_heads, "head", where)
        within(_listed(grid.get("position", [])), length, "position", where, signed=True)
        rows = expand(grid)
        for row in rows:
            engine.resolve_site(model, row["site"])
        units = _listed(grid.get("unit", []))
        if units and clean is not None:
            sites = sorted({row["site"] for row in rows})
            acts = engine.record(model, clean[:1], sites, stop=True).acts
            for site in sites:
                within(units, int(acts[site].shape[-1]), f"unit (of {site})", where)
    _check_memory(cfg, n_rows, length)
    if "position" in config.get("metric", {}):
        within([config["metric"]["position"]], length, "position", "[metric]", signed=True)
    for sweep in config.get("sweep", []):
        within(sweep.get("layers", []), n_layers, "layers", "[[sweep]]")
    for sweep in config.get("sweep", []):
        if engine.is_kind(model, sweep["site"]):
            engine.kind_sites(model, sweep["site"], sweep.get("layers"))
        else:
            engine.resolve_sites(model, sweep["site"])


# --------------------------------------------------------------------------------------------- progress
def load_progress(path: str | Path) -> pd.DataFrame:
    """Read ``progress.csv`` for ``--resume``, keeping only complete units.

    A last line without its newline (a write cut short) is dropped, and so is every row of a unit
    (``row_id``) that has a row with a missing ``row_id``, ``metric`` or ``baseline``: those units are
    simply run again. A warning says how many rows were discarded.

    Parameters
    ----------
    path : str or Path
        The study's ``progress.csv``.

    Returns
    -------
    pandas.DataFrame
        The complete units' rows (empty for an empty file).
    """
    text = Path(path).read_text()
    if not text.strip():
        return pd.DataFrame()
    cut = not text.endswith("\n")
    if cut:  # the last line is partial; progress is written whole units at a time, so only the last unit can be
        text = text[: text.rfind("\n") + 1]  # incomplete: its rows are dropped below
    try:
        frame = pd.read_csv(io.StringIO(text), dtype={"row_id": str}) if text.count("\n") > 1 else pd.DataFrame()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise SchemaError(f"{path} cannot be read ({exc}); delete it to run the study again from the start") from exc
    if len(frame) and not {"row_id", "metric", "baseline"} <= set(frame.columns):
        raise SchemaError(f"{path} is not a study progress file (columns {list(frame.columns)[:8]}); delete it to "
                          "run the study again from the start")
    n_before = len(frame)
    if len(frame):
        broken = set(frame.loc[frame[["row_id", "metric", "baseline"]].isna().any(axis=1), "row_id"].dropna())
        if cut:
            broken.add(frame["row_id"].iloc[-1])
        frame = frame[frame["row_id"].notna() & ~frame["row_id"].isin(broken)].reset_index(drop=True)
    dropped = n_before - len(frame) + int(cut)
    if dropped:
        warnings.warn(f"{path}: discarded {dropped} incomplete progress row(s) (cut short by an interruption); "
                      "their units run again", UserWarning, stacklevel=2)
    return frame
