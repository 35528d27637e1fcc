"""Probe (issue 19, item 3): the corrected test on bare arrays, which carry no trial or time coordinate.

The benchmark's null designs (``benchmarks/calibration.py``) are stripped to a bare ``(sample, unit)``
array; each unit is tested against a time-varying annotation (``speed``) and a per-trial one
(``reward``), 24 tests per data set. Compared:

* ``wald``: :func:`interp.stats.autocorrelated_wald` without segments (what a bare array gets now:
  one stationary series);
* ``hac_normal`` / ``hac_fixed_b``: a heteroskedasticity-and-autocorrelation-consistent variance of
  ``s = sum_i y_i x_i`` from the lagged products of ``z_i = y_i x_i`` themselves (Newey & West 1987),
  Bartlett kernel with Andrews' (1991) AR(1) plug-in bandwidth; these products need no stationarity of
  ``x``, so activity restarting at unknown trial starts is covered. Referred to the normal, or to the
  fixed-b critical value of Kiefer & Vogelsang (2005) (polynomial in ``b = bandwidth / n``).

``concept_test`` on the bare arrays (all three annotations, BH-FDR) uses the HAC variance
(:func:`interp.stats.hac_moments`) since this session; its rows give the per-test rate and the share of
data sets with any false label.

    python benchmarks/bare_arrays.py --datasets 100 --out benchmarks/results/bare_arrays.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).parent))
from calibration import _ci, _commit, make_dataset  # noqa: E402

from interp.label import concept_test  # noqa: E402
from interp.stats import autocorrelated_wald, hac_moments, wald_p_value  # noqa: E402
from interp.stats.autocorr import _acov  # noqa: E402


def hac_p_values(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``(p_normal, p_fixed_b, bandwidth)`` per unit of ``X`` against one column ``y``."""
    n = len(X)
    z = (X - X.mean(0)) * (y - y.mean())[:, None]
    r = float(np.clip(np.median((z[1:] * z[:-1]).sum(0) / (z * z).sum(0)), 0.0, 0.97))
    alpha = 4 * r ** 2 / ((1 - r) ** 2 * (1 + r) ** 2)
    L = int(min(n - 2, np.ceil(1.1447 * (alpha * n) ** (1 / 3))))
    G = _acov(z, L)
    w = 1 - np.arange(L + 1) / (L + 1)
    V = G[0] + 2 * (w[1:, None] * G[1:]).sum(0)
    t = z.sum(0) / np.sqrt(np.maximum(V, 1e-300))
    b = (L + 1) / n
    scale = (1.96 + 2.9694 * b + 0.4160 * b ** 2 - 0.5324 * b ** 3) / 1.96
    return 2 * sps.norm.sf(np.abs(t)), 2 * sps.norm.sf(np.abs(t) / scale), L


def main(argv: list[str] | None = None) -> int:
    """Run the probe and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--designs", nargs="+", default=["continuous", "reset", "gaps"])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bare_arrays.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0, commit = time.perf_counter(), _commit()
    rows = []
    for design in args.designs:
        out: dict[str, list] = {"wald": [], "hac_normal": [], "hac_fixed_b": [], "concept_test": []}
        bands, anyf = [], 0
        for seed in range(args.datasets):
            rec = make_dataset(design, seed)
            X = rec.data.numpy().astype(float)
            for ann in ("speed", "reward"):
                y = rec.coord(ann).astype(float)
                out["wald"].append(autocorrelated_wald(X, y)[1])
                pn, pf, L = hac_p_values(X, y)
                out["hac_normal"].append(pn)
                out["hac_fixed_b"].append(pf)
                bands.append(L)
            f = concept_test(X, {a: rec.coord(a) for a in ("target", "reward", "speed")}, n_permutations=1000,
                             seed=seed).frame
            out["concept_test"].append(f["p_value"].dropna().to_numpy())
            anyf += int(f["significant"].any())
        for name, ps in out.items():
            p = np.concatenate(ps)
            k5, k1 = int((p < 0.05).sum()), int((p < 0.01).sum())
            rows.append((design, name, len(p), k5, k1, float(np.median(bands)),
                         f"{anyf / args.datasets:.3f}" if name == "concept_test" else ""))
    power = []  # planted correlation with speed (effects 0 .. 0.4 per unit of speed), units 6-11
    for design in ("continuous", "reset"):
        for beta in (0.1, 0.2):
            pw, ph = [], []
            for seed in range(args.datasets):
                rec = make_dataset(design, seed)
                sp = rec.coord("speed").astype(float)
                Xt = rec.data.numpy().astype(float) + beta * sp[:, None] * np.linspace(0, 2, rec.shape[1])[None, :]
                pw.append(autocorrelated_wald(Xt, sp)[1][6:])
                ph.append(wald_p_value(*hac_moments(Xt, sp)[:3])[1][6:])
            power.append((design, beta, float((np.concatenate(pw) < 0.05).mean()),
                          float((np.concatenate(ph) < 0.05).mean())))
    command = "python benchmarks/bare_arrays.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["# The corrected test on bare arrays (no trial or time coordinate)", "",
             f"Commit: `{commit}`  ",
             f"Machine: {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, 1 thread; "
             f"{time.strftime('%Y-%m-%d', time.gmtime())}, {(time.perf_counter() - t0) / 60:.1f} min  ",
             f"Command: `{command}`", "",
             "Null AR(1) units (rho 0.95) of `benchmarks/calibration.py`'s designs, stripped to bare arrays; "
             "tests: 12 units x (speed, reward) per data set; share of p below 0.05 and 0.01 [95% Clopper-Pearson]. "
             "concept_test: 12 units x (target, reward, speed), and the share of data sets with a label after BH-FDR "
             "at q = 0.05 (goal <= 5% + 2 SE = 9.4%).",
             "", "| design | test | tests | p < 0.05 | p < 0.01 | median bandwidth | any false label |",
             "|---|---|---|---|---|---|---|"]
    for design, name, n, k5, k1, band, anyf_s in rows:
        a, b = _ci(k5, n)
        c, d = _ci(k1, n)
        lines.append(f"| {design} | {name} | {n} | {k5 / n:.3f} [{a:.3f}, {b:.3f}] | {k1 / n:.4f} [{c:.4f}, {d:.4f}] "
                     f"| {band:.0f} | {anyf_s} |")
    lines += ["", "Power at 0.05 (units 6-11 with a planted correlation, slope `beta` x 0.9-2 per unit of speed; on "
              "reset the one-series test's rate is inflated by its false positives):", "",
              "| design | beta | wald (one series) | hac_moments (what concept_test uses) |", "|---|---|---|---|"]
    lines += [f"| {d} | {b} | {w:.3f} | {h:.3f} |" for d, b, w, h in power]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
