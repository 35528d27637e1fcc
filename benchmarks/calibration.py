"""Benchmark: calibration of every labeller on null recordings (nothing is tuned to anything).

Each design makes ``--datasets`` recordings of untuned AR(1) units (rho 0.95) in trials, with
annotations independent of the units:

* ``continuous``: 40 trials of 30 samples, units and the time-varying annotation run on across trials;
* ``reset``: the same, but every AR(1) series restarts in every trial (trials are independent);
* ``ragged``: 40 trials of 20-45 samples, continuous;
* ``float_codes``: as continuous, but trial ids and targets are float codes (1.0, 2.0, ...);
* ``gaps``: continuous in time, with 10-30 samples between trials that are not in the recording.

Every recording has a ``time`` sample coordinate (0.1 s per sample; in ``gaps`` it jumps over the
unrecorded samples) and its ``trial`` coordinate, as a loaded NWB file or epoched recording has.

Annotations: ``target`` (4 reach targets, constant within trials, random order), ``reward`` (a
per-trial flag), ``speed`` (time-varying AR(1)), ``direction`` (the target's angle). Labellers:
``label_recordings`` (the default path without trials, and with ``groups="trial"``), both through the CLI
(``interp label FILE --annotations ... [--groups trial]``, its own argument parser on a saved file),
``concept_test`` (with and without trials), ``category_selectivity``, ``direction_tuning`` (per
sample and ``per="trial"``), ``tuning_curves`` (a "false positive" is a bin whose CI misses the true
mean 0), and the phenomenon detectors on the recording's unit statistics.

Per labeller and design it reports the per-test false-positive rate (p < alpha; tests within a data
set share its annotation, so the interval over tests is narrower than the truth) and the fraction of
data sets with any false label after BH-FDR at q = alpha, with Clopper-Pearson 95% intervals.

    python benchmarks/calibration.py --datasets 100 --out benchmarks/results/calibration.md
    python benchmarks/calibration.py --datasets 5 --designs continuous --out /tmp/cal.md   # a quick look
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import stats as sps
from scipy.signal import lfilter

from interp import Activations

DESIGNS = ("continuous", "reset", "ragged", "float_codes", "gaps")
ALPHA = 0.05
UNITS, TRIALS, T, RHO = 12, 40, 30, 0.95
N_PERMUTATIONS = 1000  # >= tests / alpha for every labeller (48 tests at most), so BH can reject at all


def _ar1(n: int, cols: int, rng: np.random.Generator, rho: float = RHO) -> np.ndarray:
    e = rng.normal(size=(n, cols))
    e[0] /= np.sqrt(1 - rho ** 2)
    return lfilter([1.0], [1.0, -rho], e, axis=0)


def make_dataset(design: str, seed: int, units: int = UNITS, trials: int = TRIALS) -> Activations:
    """One null recording of ``design`` (see the module docstring)."""
    rng = np.random.default_rng([DESIGNS.index(design), seed])
    sizes = rng.integers(20, 46, trials) if design == "ragged" else np.full(trials, T)
    trial = np.repeat(np.arange(trials), sizes)
    n = int(sizes.sum())
    clock = np.arange(n)  # sample times (0.1 s apart); gaps: the unrecorded samples between trials are skipped
    if design == "reset":
        X = np.concatenate([_ar1(int(m), units, rng) for m in sizes])
        speed = np.concatenate([_ar1(int(m), 1, rng) for m in sizes])[:, 0]
    elif design == "gaps":
        gaps = rng.integers(10, 31, trials)
        keep = np.concatenate([np.r_[np.zeros(g, bool), np.ones(m, bool)] for g, m in zip(gaps, sizes)])
        X = _ar1(len(keep), units, rng)[keep]
        speed = _ar1(len(keep), 1, rng)[keep, 0]
        clock = np.flatnonzero(keep)
    else:
        X = _ar1(n, units, rng)
        speed = _ar1(n, 1, rng)[:, 0]
    target = np.repeat(rng.permutation(np.arange(trials) % 4), sizes)
    reward = np.repeat(rng.random(trials) < 0.5, sizes)
    direction = target * 90.0
    if design == "float_codes":
        trial, target = trial + 1.0, target + 1.0
    return Activations(torch.tensor(X), ("sample", "unit"),
                       {"sample": {"trial": trial, "target": target, "reward": reward, "speed": speed,
                                   "direction": direction, "time": clock * 0.1},
                        "unit": {"name": [f"u{i}" for i in range(units)]}},
                       {"source": f"null {design}"})


def _from_concepts(tests) -> tuple[int, int, bool]:
    f = tests.frame
    p = f["p_value"].dropna()
    return len(p), int((p < ALPHA).sum()), bool(f["significant"].any())


def _from_labels(res) -> tuple[int, int, bool]:
    n, k, _ = _from_concepts(res.concepts)
    labeled = (res.table["label"] != "no significant behaviour tuning").any()
    return n, k, bool(labeled)


def _cli(rec: Activations, groups: bool, seed: int) -> tuple[int, int, bool]:
    from interp.cli import label as cli_label
    from interp.cli.inputs import classify

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec.safetensors"
        rec.save(path)
        parser = argparse.ArgumentParser()
        cli_label.add_arguments(parser)
        argv = [str(path), "--annotations", "target", "reward", "speed", "--n-permutations", str(N_PERMUTATIONS),
                "--seed", str(seed)] + (["--groups", "trial"] if groups else [])
        args = parser.parse_args(argv)
        target = classify(args.model, accept=("model", "recording", "dataset"), datasets=cli_label.DATASETS)
        (res,) = cli_label.label_recording_file(target, args)
    return _from_labels(res)


def _tuning_curves(rec: Activations, seed: int) -> tuple[int, int, bool]:
    from interp.label import tuning_curves

    tc = tuning_curves(rec, "speed", bins=4, groups="trial", n_bootstraps=200, alpha=ALPHA, seed=seed)
    ok = np.isfinite(tc.low)
    miss = ((tc.low > 0) | (tc.high < 0)) & ok
    return int(ok.sum()), int(miss.sum()), bool(miss.any())


def _phenomena(rec: Activations, seed: int) -> tuple[int, int, bool]:
    from interp.label.phenomena import detect_phenomena
    from interp.label.stats import UnitStats

    trials = rec.coord("trial")
    sizes = np.bincount(np.unique(trials, return_inverse=True)[1])
    st = UnitStats(rec.shape[1], k=4, window=(2, 2), n_positions=int(sizes.max()))
    if len(set(sizes.tolist())) == 1:  # equal trials: (trial, time, unit), positions are times in the trial
        st.update(rec.data.reshape(len(sizes), int(sizes[0]), -1))
    else:
        st.update(rec.data)
    flags = detect_phenomena(st.result()).labels()
    flagged = [bool(f) for f in flags]
    return len(flagged), int(sum(flagged)), any(flagged)


def labellers() -> dict[str, Callable[[Activations, int], tuple[int, int, bool]]]:
    """``{name: fn(recording, seed) -> (n_tests, n_p_below_alpha, any_false_label)}``."""
    from interp.label import category_selectivity, concept_test, direction_tuning

    anns = ["target", "reward", "speed"]
    P = N_PERMUTATIONS
    return {
        # the CLI calls label_recordings with its flags: these two rows are label_recordings' default path (no
        # trials) and its trial path, through the command's own parser and a saved file
        "label_recordings via CLI (default)": lambda r, s: _cli(r, False, s),
        "label_recordings via CLI --groups trial": lambda r, s: _cli(r, True, s),
        "concept_test (no trials)": lambda r, s: _from_concepts(concept_test(r, anns, n_permutations=P, seed=s)),
        "concept_test (groups=trial)": lambda r, s: _from_concepts(
            concept_test(r, anns, groups="trial", n_permutations=P, seed=s)),
        "category_selectivity (groups=trial)": lambda r, s: _from_concepts(
            category_selectivity(r, "target", groups="trial", n_permutations=P, seed=s)),
        "direction_tuning (groups=trial)": lambda r, s: _from_direction(
            direction_tuning(r, angle="direction", degrees=True, groups="trial", n_permutations=P, n_bootstraps=0,
                             seed=s)),
        "direction_tuning (per=trial)": lambda r, s: _from_direction(
            direction_tuning(r, angle="direction", degrees=True, groups="trial", per="trial", n_permutations=P,
                             n_bootstraps=0, seed=s)),
        "tuning_curves (CI misses the truth)": _tuning_curves,
        "phenomena (unit statistics)": _phenomena,
    }


def _from_direction(res) -> tuple[int, int, bool]:
    f = res.frame
    p = f["p_value"].dropna()
    return len(p), int((p < ALPHA).sum()), bool(f["tuned"].any())


def _ci(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    ci = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def _cluster_ci(per_set: list[tuple[int, int]]) -> tuple[float, float]:
    """95% interval of the per-test FPR with data sets as clusters (tests of one data set are correlated):
    ratio estimator with its cluster-robust standard error and a t(D - 1) quantile."""
    n = np.array([a for a, _ in per_set], dtype=float)
    k = np.array([b for _, b in per_set], dtype=float)
    D = len(n)
    if D < 2 or n.sum() == 0:
        return float("nan"), float("nan")
    rate = k.sum() / n.sum()
    se = np.sqrt(((k - rate * n) ** 2).sum() / (D * (D - 1))) / n.mean()
    half = sps.t.ppf(0.975, D - 1) * se
    return max(0.0, rate - half), min(1.0, rate + half)


def run(designs: tuple[str, ...], n_datasets: int, only: list[str] | None = None,
        progress: bool = False) -> list[dict]:
    """Calibration rows: one per (design, labeller)."""
    fns = labellers()
    if only:
        fns = {k: v for k, v in fns.items() if any(o in k for o in only)}
    rows = []
    for design in designs:
        acc = {name: [0, 0, 0, 0, 0.0, []] for name in fns}  # tests, rejections, any false, runs, s, per-set FPR
        for seed in range(n_datasets):
            rec = make_dataset(design, seed)
            for name, fn in fns.items():
                t0 = time.perf_counter()
                n, k, anyf = fn(rec, seed)
                a = acc[name]
                a[0] += n
                a[1] += k
                a[2] += int(anyf)
                a[3] += 1
                a[4] += time.perf_counter() - t0
                a[5].append((n, k))
            if progress:
                print(f"{design}: {seed + 1}/{n_datasets}", file=sys.stderr, flush=True)
        for name, (n, k, anyf, runs, secs, per_set) in acc.items():
            rows.append({"design": design, "labeller": name, "tests": n, "rejected": k, "fpr": k / n if n else np.nan,
                         "fpr_ci": _ci(k, n), "fpr_cluster_ci": _cluster_ci(per_set), "datasets": runs, "any": anyf,
                         "any_rate": anyf / runs, "any_ci": _ci(anyf, runs), "seconds": secs / max(runs, 1)})
    return rows


def verdict(row: dict) -> str:
    """``calibrated`` / ``conservative`` / ``FAILS``: the per-test FPR's interval (data sets as clusters) holds
    alpha (or lies below it), and the any-false-label rate is at most alpha + 2 standard errors."""
    if row["labeller"].startswith("tuning_curves") or row["labeller"].startswith("phenomena"):
        any_ok = True  # no multiplicity-corrected family: intervals per bin, thresholds per unit
    else:
        any_ok = row["any_rate"] <= ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / row["datasets"])
    lo, hi = row["fpr_cluster_ci"]
    if not any_ok or lo > ALPHA:
        return "FAILS"
    return "calibrated" if hi >= ALPHA else "conservative"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def to_markdown(rows: list[dict], command: str, seconds: float, commit: str | None = None) -> str:
    """The results file (``commit``: the code the rows came from; default: HEAD now)."""
    commit = commit or _commit()
    lines = [
        "# Calibration of every labeller on null recordings",
        "",
        f"Commit: `{commit}`  ",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, torch "
        f"{torch.__version__}, 1 thread; {time.strftime('%Y-%m-%d', time.gmtime())}, {seconds / 60:.1f} min  ",
        "Command:",
        "",
        f"    {command}",
        "",
        f"Untuned AR(1) units (rho {RHO}), {UNITS} per recording, {TRIALS} trials; annotations independent of the units "
        "(see `benchmarks/calibration.py`). Per-test FPR: share of tests with p < 0.05 (tests of one data set share "
        "its annotations, so the interval over tests is too narrow by the design effect); any: share of data sets "
        "with at least one false label after BH-FDR at q = 0.05 (goal <= 5% + 2 SE). 95% Clopper-Pearson intervals. "
        "tuning_curves: share of bins whose 95% CI misses the true mean 0 (per bin, no family); "
        "phenomena: units flagged by a detector (thresholds, no p-values).",
        "",
        "Verdict: `calibrated` when the per-test FPR's interval with data sets as clusters (the tests of one data "
        "set share its annotations and are correlated, so the binomial interval over tests is too narrow) holds "
        "0.05 and the any-false-label rate is at most 5% + 2 SE (9.4% at 100 data sets); `conservative` when that "
        "interval lies below 0.05; `FAILS` otherwise. With 45 rows, about two are expected to cross a 95% bound "
        "by chance alone.",
        "",
        "| design | labeller | tests | per-test FPR [binomial 95% CI] [by data set] | data sets | any false label "
        "[95% CI] | s / data set | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["fpr_ci"]
        clo, chi = r["fpr_cluster_ci"]
        alo, ahi = r["any_ci"]
        lines.append(f"| {r['design']} | {r['labeller']} | {r['tests']} | {r['fpr']:.3f} [{lo:.3f}, {hi:.3f}] "
                     f"[{clo:.3f}, {chi:.3f}] | "
                     f"{r['datasets']} | {r['any_rate']:.3f} [{alo:.3f}, {ahi:.3f}] | {r['seconds']:.2f} | "
                     f"{verdict(r)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the designs and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=100, help="null data sets per design (default 100)")
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=DESIGNS)
    parser.add_argument("--only", nargs="+", default=None, help="labellers whose name contains one of these")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "calibration.md"))
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    commit = _commit()  # the code imported now, not whatever HEAD is when the run ends
    rows = run(tuple(args.designs), args.datasets, args.only, args.progress)
    command = "python benchmarks/calibration.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = to_markdown(rows, command, time.perf_counter() - t0, commit)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
