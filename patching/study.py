"""Scripted ablation and patching studies: ``run_study("study.toml", out="runs/x")`` (the library behind
``interp study run study.toml [--resume]``).

A study file names a model, the prompts (or a generated data set), a metric, and a grid of
interventions and/or activation-patching sweeps. Running it writes, into the output folder:

* ``results.csv`` and ``results.parquet``: one row per intervention (or patched cell) with the
  metric, the unablated baseline and the effect;
* ``summary.html``: a self-contained report with plotly heatmaps of every grid and sweep;
* ``progress.csv`` (rows finished so far) and ``study.json`` (the resolved configuration).

``resume=True`` (``--resume``) continues an interrupted run without recomputing finished rows.
:func:`run_study` returns a :class:`StudyResult` (``to_frame()`` is the results table;
``StudyResult.load(folder)`` reads a finished study back).

Schema (every key is checked; unknown keys are errors)::

    title = "Induction heads of induction-2l"
    model = "induction-2l"            # a zoo name, or a table: model = { native = { d_model = 32, ... } }
    output = "runs/induction"         # optional; --out overrides
    batch_size = 64                   # optional, patches per forward pass in sweeps

    [data]                            # kind = "prompts" | "tokens" | "ioi" | "induction"
    kind = "induction"
    n = 32                            # ioi/induction: number of pairs
    # prompts: clean = ["..."], corrupted = ["..."], correct = [" Mary"], incorrect = [" John"]
    # tokens:  clean = [[...]], corrupted = [[...]], correct = [..], incorrect = [..]

    [metric]                          # name = "logit_diff" | "normalized_logit_diff" | "probability"
    name = "logit_diff"               #        | "log_probability" | "kl" | "loss"

    [[grid]]                          # one intervention per combination of the list-valued keys
    intervention = "zero"             # zero | mean | resample | scale | clamp | patch
    site = "blocks.{layer}.attn.hook_z"
    layer = [0, 1]
    head = [0, 1, 2, 3]
    # factor = [0.0, 0.5] (scale), value = [0.0] (clamp), position = [..], unit = [..]

    [[sweep]]                         # activation patching (needs corrupted inputs)
    site = "resid_pre"                # any site kind of patching.activation_patching
    by = ["pos"]
    direction = "denoise"
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from interp import engine
from interp.checks import make_dir, read_json
from interp.errors import ConfigError, DataNotFoundError
from interp.results import Result, themed
from interp.tensor import atomic_write

from . import metrics, study_schema
from .activation_patching import activation_patching
from .interventions import Intervention, intervene

DATA_KINDS, INTERVENTIONS, METRICS = study_schema.DATA_KINDS, study_schema.INTERVENTIONS, study_schema.METRICS


# ---------------------------------------------------------------------------------------------- config
def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a study file; raises :class:`ConfigError` naming any unknown or missing key.

    Parameters
    ----------
    path : str or Path
        The study's TOML file (:class:`DataNotFoundError` if it does not exist).

    Returns
    -------
    dict
        The parsed, validated configuration.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - python < 3.11
        import tomli as tomllib
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"study file {str(path)!r} does not exist")
    try:
        config = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return validate(config, str(path))


def check_study(path: str | Path) -> dict[str, Any]:
    """What ``interp study check`` does: validate the file, then load its model and inputs and check every site,
    layer, head and position against them, without running anything. Returns the configuration.

    Parameters
    ----------
    path : str or Path
        The study file (TOML).
    """
    config = load_config(path)
    torch.manual_seed(int(config.get("seed", 0)))
    model = _load_model(config["model"])
    data = _data(model, config["data"])
    study_schema.check_sites(model, config, _expand_grid, length=int(data["clean"].shape[1]),
                             n_rows=int(data["clean"].shape[0]), clean=data["clean"])
    return config


def validate(config: dict[str, Any], where: str = "study") -> dict[str, Any]:
    """Check a parsed study file against the schema of :mod:`patching.study_schema` (before anything runs).

    Parameters
    ----------
    config : dict
        The parsed study file (TOML as a dict).
    where : str
        A name for the file in error messages.

    Returns
    -------
    dict
        ``config`` itself, unchanged; :class:`ConfigError` names any problem.
    """
    return study_schema.validate(config, where)


# ------------------------------------------------------------------------------------------ resolution
def _load_model(spec: Any) -> Any:
    if isinstance(spec, str):
        import interp.models

        model, _ = interp.models.load(spec)
        return model
    if "native" in spec:
        from transformer_lens.config import TransformerBridgeConfig
        from transformer_lens.model_bridge import TransformerBridge

        try:
            native = TransformerBridgeConfig(**spec["native"])
            model = TransformerBridge.boot_native(native)
        except (TypeError, ValueError, KeyError, AssertionError, RuntimeError, AttributeError) as exc:
            raise ConfigError(f"model native = {{...}}: {type(exc).__name__}: {exc}; use the fields and values of "
                              "TransformerBridgeConfig") from exc
        model.eval()
        return model
    return _load_model(spec["name"])


def _answer_ids(model: Any, answers: Sequence[Any]) -> torch.Tensor:
    ids = []
    for a in answers:
        if isinstance(a, int):
            ids.append(a)
            continue
        tok = model.tokenizer.encode(a, add_special_tokens=False)
        if len(tok) != 1:
            raise ConfigError(f"answer {a!r} is {len(tok)} tokens; answers must be single tokens")
        ids.append(tok[0])
    return torch.tensor(ids)


def _data(model: Any, data: dict[str, Any]) -> dict[str, Any]:
    from . import datasets

    kind = data.get("kind", "prompts")
    seed = int(data.get("seed", 0))
    if kind == "induction":
        pairs = datasets.induction_pairs(int(data.get("n", 32)), period=int(data.get("period", 12)),
                                         query=int(data.get("query", 8)), d_vocab=int(model.cfg.d_vocab), seed=seed)
        return {"clean": pairs.clean, "corrupted": pairs.corrupted, "correct": pairs.correct,
                "incorrect": pairs.incorrect}
    if kind == "ioi":
        groups = datasets.ioi_pairs(model, int(data.get("n", 20)), seed=seed,
                                    templates=tuple(data.get("templates", datasets.IOI_TEMPLATES[:1])))
        if len(groups) != 1:
            raise ConfigError("an IOI study uses one template (prompts of one token length); give templates = [\"...\"]")
        g = groups[0]
        return {"clean": g.clean, "corrupted": g.corrupted, "correct": g.correct, "incorrect": g.incorrect}
    if "clean" not in data:
        raise ConfigError(f"[data] kind={kind!r} needs 'clean'")
    def conv(x: Any) -> torch.Tensor:  # prompts or token rows; ids are checked against the vocabulary
        return engine.to_tokens(model, x)

    out = {"clean": conv(data["clean"])}
    if "corrupted" in data:
        out["corrupted"] = conv(data["corrupted"])
        engine.check_pair(out["clean"], out["corrupted"])
    for key in ("correct", "incorrect"):
        if key in data:
            out[key] = _answer_ids(model, data[key])
    return out


def _metric(model: Any, spec: dict[str, Any], data: dict[str, Any]) -> metrics.Metric:
    name = spec["name"]
    pos = int(spec.get("position", -1))
    needs = {"logit_diff": ("correct", "incorrect"), "normalized_logit_diff": ("correct", "incorrect", "corrupted"),
             "probability": ("correct",), "log_probability": ("correct",)}.get(name, ())
    for key in needs:
        if key not in data:
            raise ConfigError(f"metric {name!r} needs [data] {key!r}")
    if name == "logit_diff":
        return metrics.logit_diff(data["correct"], data["incorrect"], pos)
    if name == "normalized_logit_diff":
        with torch.no_grad():
            clean, corrupted = model(data["clean"]), model(data["corrupted"])
        return metrics.normalized_logit_diff(data["correct"], data["incorrect"], clean, corrupted, pos)
    if name == "probability":
        return metrics.probability(data["correct"], pos)
    if name == "log_probability":
        return metrics.log_probability(data["correct"], pos)
    if name == "kl":
        with torch.no_grad():
            return metrics.kl_divergence(model(data["clean"]), pos)
    return metrics.loss(data["clean"])


def _expand_grid(grid: dict[str, Any]) -> list[dict[str, Any]]:
    keys = [k for k in ("layer", "head", "position", "unit", "factor", "value") if k in grid]
    lists = [grid[k] if isinstance(grid[k], list) else [grid[k]] for k in keys]
    rows = []
    for combo in itertools.product(*lists):
        row = {"intervention": grid["intervention"], "site_template": grid["site"], **dict(zip(keys, combo))}
        row["site"] = grid["site"].format(layer=row.get("layer", ""))
        rows.append(row)
    return rows


def _spec(row: dict[str, Any], data: dict[str, Any]) -> Intervention:
    kind = row["intervention"]
    subset = {"heads": [row["head"]] if "head" in row else None,
              "positions": [row["position"]] if "position" in row else None,
              "units": [row["unit"]] if "unit" in row else None}
    reference = data.get("corrupted", data["clean"])
    if kind == "zero":
        return Intervention(row["site"], "zero", **subset)
    if kind in ("mean", "resample"):
        return Intervention(row["site"], kind, reference, **subset)
    if kind == "patch":
        if "corrupted" not in data:
            raise ConfigError("patch interventions need [data] corrupted inputs")
        return Intervention(row["site"], "patch", data["corrupted"], **subset)
    if kind == "scale":
        return Intervention(row["site"], "scale", float(row.get("factor", 0.0)), **subset)
    return Intervention(row["site"], "clamp", float(row.get("value", 0.0)), **subset)


def _row_id(row: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------- running
def run_study(path: str | Path, out: str | Path | None = None, resume: bool = False, progress: bool = True
              ) -> StudyResult:
    """Run a study file; returns a :class:`StudyResult` (also written to the output folder).

    Parameters
    ----------
    path : str or Path
        The study's TOML file.
    out : str or Path, optional
        The output folder (default the file's ``output`` key, else ``path`` without its suffix).
    resume : bool
        Continue a study whose folder already holds progress (the study file must be unchanged); without
        it an existing ``progress.csv`` is an error.
    progress : bool
        Show a progress bar over the grid rows and sweeps.

    >>> res = run_study("study.toml", out="runs/x", progress=False)   # doctest: +SKIP
    >>> print(res.summary()); res.to_frame().head()                    # doctest: +SKIP
    """
    config = load_config(path)
    out = Path(out or config.get("output") or Path(path).with_suffix(""))
    make_dir(out, "choose another --out")
    fingerprint = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    progress_file, meta_file = out / "progress.csv", out / "study.json"
    done = pd.DataFrame()
    if progress_file.exists():
        if not resume:
            raise ConfigError(f"{out} already holds results of a study; pass --resume to continue it or choose "
                              "another --out")
        old = read_json(meta_file, "study metadata", f"delete {out} to start again") if meta_file.exists() else {}
        if old.get("fingerprint") != fingerprint:
            raise ConfigError(f"{out} holds a different study (the file changed); use a new --out")
        done = study_schema.load_progress(progress_file)
    atomic_write(meta_file, lambda tmp: Path(tmp).write_text(json.dumps({"fingerprint": fingerprint, "config": config},
                                                                        indent=2, default=str)))
    torch.manual_seed(int(config.get("seed", 0)))
    model = _load_model(config["model"])
    data = _data(model, config["data"])
    study_schema.check_sites(model, config, _expand_grid, length=int(data["clean"].shape[1]),
                             n_rows=int(data["clean"].shape[0]), clean=data["clean"])
    metric = _metric(model, config["metric"], data)
    with torch.no_grad():
        baseline = float(metrics.evaluate(metric, model(data["clean"])))
    finished = set(done["row_id"]) if "row_id" in done else set()
    rows = [done] if len(done) else []

    def save() -> None:
        table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
        atomic_write(progress_file, lambda tmp: table.to_csv(tmp, index=False))

    units: list[tuple[str, dict[str, Any]]] = []
    for g_index, grid in enumerate(config.get("grid", [])):
        for row in _expand_grid(grid):
            row["group"] = grid.get("name", f"grid{g_index + 1}")
            units.append(("grid", row))
    for s_index, sweep in enumerate(config.get("sweep", [])):
        units.append(("sweep", {**sweep, "group": sweep.get("name", f"sweep{s_index + 1}")}))

    from interp._progress import tqdm

    for kind, unit in tqdm(units, disable=not progress, desc="study"):
        uid = _row_id({"kind": kind, **unit})
        if uid in finished:
            continue
        if kind == "grid":
            with torch.no_grad(), intervene(model, _spec(unit, data)):
                value = float(metrics.evaluate(metric, model(data["clean"])))
            record = {k: v for k, v in unit.items() if k != "site_template"}
            rows.append(pd.DataFrame([{"row_id": uid, "kind": "intervention", **record, "metric": value,
                                       "baseline": baseline, "effect": value - baseline}]))
        else:
            if "corrupted" not in data:
                raise ConfigError("[[sweep]] activation patching needs corrupted inputs in [data]")
            res = activation_patching(model, data["clean"], data["corrupted"], metric, unit["site"],
                                      by=unit.get("by"), layers=unit.get("layers"),
                                      direction=unit.get("direction", "denoise"),
                                      patches_per_pass=config.get("batch_size"))
            frame = res.to_frame().drop(columns=["metric", "method"]).rename(columns={"value": "metric"})
            frame["baseline"] = res.baseline
            frame.insert(0, "row_id", uid)
            frame.insert(1, "kind", "sweep")
            frame["group"] = unit["group"]
            frame["direction"] = res.direction
            frame["clean_metric"], frame["corrupted_metric"] = res.clean_value, res.corrupted_value
            rows.append(frame)
        save()
    result = StudyResult(pd.concat(rows, ignore_index=True), config, baseline)
    result.save(out)
    return result


def _heatmap(frame: pd.DataFrame, title: str):
    import plotly.express as px

    axes = [c for c in ("layer", "head", "pos", "position", "neuron", "unit", "factor", "value")
            if c in frame and frame[c].notna().any() and frame[c].nunique() > 0]
    if len(axes) >= 2:
        pivot = frame.pivot_table(index=axes[0], columns=axes[1], values="effect", aggfunc="mean")
        vmax = float(pivot.abs().max().max() or 1.0)
        fig = px.imshow(pivot, color_continuous_scale="RdBu", zmin=-vmax, zmax=vmax, aspect="auto",
                        labels={"color": "effect"})
    else:
        x = frame[axes[0]].astype(str) if axes else frame.index.astype(str)
        fig = px.bar(x=x, y=frame["effect"], labels={"x": axes[0] if axes else "row", "y": "effect"})
    return themed(fig, title=title)


class StudyResult(Result):
    """The results of a study: one row per intervention or patched cell (``table``), the resolved
    ``config`` and the unablated ``baseline`` metric.

    ``save(folder)`` writes ``results.csv``, ``results.parquet``, ``study.json`` and ``summary.html``;
    ``StudyResult.load(folder)`` reads them back.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per intervention or patched cell, with ``group``, ``site``, ``metric``, ``baseline`` and
        ``effect`` (metric minus baseline) and the row's axes (``layer``, ``head``, ``pos`` ...).
    config : dict
        The validated study file.
    baseline : float
        The metric on the clean inputs with no intervention.
    """

    def __init__(self, table: pd.DataFrame, config: dict[str, Any], baseline: float) -> None:
        self.table, self.config, self.baseline = table, config, float(baseline)

    @property
    def title(self) -> str:
        """The study's title (from the study file)."""
        return str(self.config.get("title", "Study"))

    def to_frame(self) -> pd.DataFrame:
        """The results table: metric, baseline and ``effect`` (metric minus baseline) per row."""
        return self.table.copy()

    def parts(self) -> list[tuple[str, pd.DataFrame]]:
        """``(label, rows)`` of each grid and sweep, in the order of the study file."""
        out = []
        for group, frame in self.table.groupby("group", sort=False):
            sub = frame.dropna(axis=1, how="all")
            label = f"{group}: " + (f"{sub['intervention'].iloc[0]} on {sub['site'].iloc[0]}" if "intervention" in sub
                                    else f"activation patching of {sub['site'].iloc[0]}")
            out.append((label, sub))
        return out

    def summary(self) -> str:
        """The model, metric and baseline, and the largest effect of each grid and sweep."""
        c = self.config
        lines = [f"{self.title}: model {c.get('model')!r}, metric {c.get('metric', {}).get('name')}, unablated "
                 f"metric {self.baseline:.4g}, {len(self.table)} rows"]
        for label, sub in self.parts():
            row = sub.loc[sub["effect"].abs().idxmax()]
            where = ", ".join(f"{k} {row[k]}" for k in ("layer", "head", "pos", "position", "neuron", "unit", "factor",
                                                         "value") if k in sub and pd.notna(row[k]))
            lines.append(f"  {label}: largest effect {row['effect']:+.4g}" + (f" at {where}" if where else ""))
        return "\n".join(lines)

    def plot(self, which: int = 0, **kwargs: Any) -> Any:
        """Heatmap (or bars) of the effects of one grid or sweep.

        Parameters
        ----------
        which : int
            Which grid or sweep, counted from 0 in the order of :meth:`parts` (the study file's order).
        **kwargs
            ``title`` (default the part's label).
        """
        label, sub = self.parts()[which]
        return _heatmap(sub, kwargs.get("title", label))

    def report_section(self) -> list[Any]:
        """Summary, the configuration, one heatmap per grid/sweep and the whole table."""
        from interp.report.html import escape

        parts: list[Any] = [self._summary_html(), "<details><summary>Configuration</summary><pre>"
                            f"{escape(json.dumps(self.config, indent=2, default=str))}</pre></details>"]
        parts += [_heatmap(sub, label) for label, sub in self.parts()]
        parts.append(self.table.drop(columns=["row_id"], errors="ignore"))
        return parts

    def save(self, folder: str | Path) -> Path:
        """Write ``results.csv``, ``results.parquet``, ``study.json`` (config, baseline) and ``summary.html``.

        Parameters
        ----------
        folder : str or Path
            The output folder (created if needed); an existing ``study.json`` keeps its other keys.

        Returns
        -------
        Path
            ``folder``.
        """
        from interp.report.html import Report

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = json.loads((folder / "study.json").read_text()) if (folder / "study.json").exists() else {}
        meta.update(config=self.config, baseline=self.baseline)
        atomic_write(folder / "study.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2, default=str)))
        atomic_write(folder / "results.csv", lambda tmp: self.table.to_csv(tmp, index=False))
        atomic_write(folder / "results.parquet", lambda tmp: self.table.to_parquet(tmp, index=False))
        c = self.config
        report = Report(self.title, subtitle=f"model {c.get('model')!r}, metric {c.get('metric', {}).get('name')}, "
                                             f"unablated metric {self.baseline:.4g}")
        report.add(self, title="Results")
        report.write(folder / "summary.html")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> StudyResult:
        """Read a study written by :meth:`save` (or :func:`run_study`) back."""
        folder = Path(folder)
        missing = [n for n in ("results.parquet", "study.json") if not (folder / n).exists()]
        if missing:
            raise DataNotFoundError(f"{folder} holds no finished study (missing {', '.join(missing)}); run it with "
                                    "`interp study run STUDY --out FOLDER` first")
        meta = json.loads((folder / "study.json").read_text())
        return cls(pd.read_parquet(folder / "results.parquet"), meta["config"], float(meta["baseline"]))
