"""RelP and AtP against activation patching on the conformance suite's MoE models, over the init scale.

Issue 12 asked that RelP on a mixture-of-experts model correlate with activation patching at least as well
as AtP at every site kind. This measures it on the conformance suite's tiny Mixtral and Qwen2-MoE
(`tests/conformance/conftest.py`; 2 layers, d_model 32, 4 experts, top-2) built with ``initializer_range``
0.02 (Hugging Face's default), 0.05 and 0.1: Pearson r of each estimate with activation patching per site kind,
pooled over two sets of 12 prompt pairs (the same computation as
``tests/conformance/test_conformance_attribution.py::_correlations``).

Run (from the repository root)::

    python benchmarks/moe_faithfulness.py       # writes benchmarks/results/moe_faithfulness.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conformance import test_conformance_attribution as suite  # noqa: E402


def correlations(name: str, std: float) -> dict[str, dict[str, float]]:
    """Pearson r of AtP and RelP with activation patching per site kind on ``name`` built at init ``std``."""
    return suite._correlations(name, std, ("atp", "relp"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mixtral,qwen2-moe,llama-gqa", help="llama-gqa: a dense model for comparison")
    parser.add_argument("--stds", default="0.02,0.05,0.1")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "moe_faithfulness.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.models.split(","):
        for std in (float(s) for s in args.stds.split(",")):
            r = correlations(name, std)
            for kind in r["atp"]:
                rows.append(dict(model=name, init_std=std, site=kind, atp=round(r["atp"][kind], 3),
                                 relp=round(r["relp"][kind], 3),
                                 relp_at_least_atp="yes" if r["relp"][kind] >= r["atp"][kind] else "no"))
            print(name, std, r, flush=True)
    table = pd.DataFrame(rows)
    held = table.groupby(["model", "init_std"])["relp_at_least_atp"].apply(lambda s: (s == "yes").all())
    lines = ["# RelP vs AtP on mixture-of-experts models (and a dense Llama for comparison), over the init scale", "",
             f"Command: `python benchmarks/moe_faithfulness.py --models {args.models} --stds {args.stds}`", "",
             f"Machine: {os.cpu_count()} CPUs, torch {torch.__version__}, 1 thread. Pearson r with activation "
             "patching, 2 x 12 prompt pairs pooled, per site kind (`z` = heads).", "",
             "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    lines += ["", "RelP at least as good as AtP at every site kind: " + "; ".join(
        f"{m} std {s}: {'yes' if ok else 'no'}" for (m, s), ok in held.items()) + ".", "",
        "RelP gains where AtP is weak (the residual stream, and sublayer outputs once the model is non-linear) "
        "and trails the exact gradient where single-component patches are small (queries, single heads). "
        "That the MoE rules themselves are right is tested directly: on a one-expert top-1 Mixtral, RelP equals "
        "RelP on a Llama with the same weights at every site kind "
        "(`tests/conformance/test_conformance_attribution.py::test_relp_on_a_one_expert_moe_equals_relp_on_its_"
        "dense_twin`).", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
