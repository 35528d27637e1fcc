"""Run every generated family through every check and write the table of tests/conformance/README.md.

    python -m tests.conformance.report                 # all families, table on stdout, JSON in --json
    python -m tests.conformance.report llama mixtral   # some families
    python -m tests.conformance.report --from-json out.json   # the table of an earlier run

Each cell is ``pass``, ``refused`` (the library raised an ``InterpError`` that names why), ``FAIL`` (a wrong
number or a crash) or ``n/a`` (the family has no ``blocks.{L}`` site kinds the check needs). Families that are not built are listed with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def run(names: list[str] | None = None) -> list[dict]:
    import torch

    from interp.errors import InterpError

    from .checks import CHECKS, NotApplicable
    from .families import build, families

    torch.set_num_threads(1)
    rows = []
    for fam in families():
        if names and fam.name not in names:
            continue
        row = {"family": fam.name, "architecture": fam.architecture, "refused": fam.refused, "checks": {}}
        rows.append(row)
        if fam.refused:
            continue
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                b = build(fam.name)
        except Exception as exc:  # noqa: BLE001 - recorded: the family does not build or boot
            row["refused"] = f"does not build or boot: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            continue
        row["moe"] = b.info.moe
        for check, fn in CHECKS.items():
            t = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    note = fn(b)
                cell = {"status": "pass", "note": note}
            except NotApplicable as exc:
                cell = {"status": "n/a", "note": str(exc)}
            except InterpError as exc:
                cell = {"status": "refused", "note": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
            except Exception as exc:  # noqa: BLE001 - recorded as a failure
                cell = {"status": "FAIL", "note": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"}
            cell["seconds"] = round(time.perf_counter() - t, 2)
            row["checks"][check] = cell
        row["seconds"] = round(time.perf_counter() - start, 2)
        print(f"{fam.name}: " + " ".join(f"{k}={v['status']}" for k, v in row["checks"].items()), file=sys.stderr,
              flush=True)
    return rows


def table(rows: list[dict]) -> str:
    from .checks import CHECKS

    built = [r for r in rows if not r["refused"]]
    why: dict[str, int] = {}
    for r in rows:
        if r["refused"]:
            key = r["refused"].split(":")[0].split(" (")[0]
            why[key] = why.get(key, 0) + 1
    lines = [f"Architecture adapters in TransformerLens's list: {len(rows)}; built and booted: {len(built)}; not built: "
             + ", ".join(f"{n} {k}" for k, n in sorted(why.items(), key=lambda kv: -kv[1])) + ".", "",
             "| check | pass | refused | FAIL | n/a |", "|---|---|---|---|---|"]
    for check in CHECKS:
        counts = {s: sum(r["checks"][check]["status"] == s for r in built) for s in ("pass", "refused", "FAIL", "n/a")}
        lines.append(f"| {check} | {counts['pass']} | {counts['refused']} | {counts['FAIL']} | {counts['n/a']} |")
    lines += ["", "| family | architecture | MoE | " + " | ".join(CHECKS) + " |",
              "|---|---|---|" + "---|" * len(CHECKS)]
    for r in built:
        lines.append(f"| {r['family']} | {r['architecture']} | {'yes' if r.get('moe') else ''} | "
                     + " | ".join(r["checks"][c]["status"] for c in CHECKS) + " |")
    notes = [(r["family"], c, v["note"]) for r in built for c, v in r["checks"].items()
             if v["status"] not in ("pass", "n/a")]
    if notes:
        lines += ["", "Why a check is refused or fails:", ""]
        lines += [f"* {f} / {c}: {n}" for f, c, n in notes]
    lines += ["", "Families not built:", ""]
    lines += [f"* {r['family']} ({r['architecture']}): {r['refused']}" for r in rows if r["refused"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    parser.add_argument("--from-json", default=None, help="print the table of rows written earlier with --json")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            print(table(json.load(f)))
        return
    rows = run(args.families or None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(table(rows))


if __name__ == "__main__":
    main()
