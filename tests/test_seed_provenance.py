"""Every seed method's entry point names its paper, the code commit it follows, and where it differs.

Issue 21's acceptance: "Every seed method's docstring says which paper and which code commit it follows,
and where it differs." The commits are the authors' repositories as fetched (full hashes below); papers
without published code say so ("no code") instead of naming a commit.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

#: family -> (arXiv id of the paper, the commit followed (full hash) or None where no code is published)
FAMILIES = {
    # ordavid-s/snmf-mlp-decomposition HEAD ("updated to correct intervention", 2026-07-07)
    "snmf": ("2506.10920", "ab58c781a66289c70bcf4f1fc5eda969d92e2ef5"),
    # foundation-model-research/NeuronPath HEAD ("init", 2025-02-23)
    "neuronpath": ("2503.09046", "5f93d0b9f2bcd2061640a3b90117f0087f068734"),
    # FarnoushRJ/RelP HEAD ("Bugs fixed.", 2025-09-01)
    "relp": ("2508.21258", "aa0e2282f8bd8391c308415024b5f4f8f13c1e9d"),
    # evandez/neuron-descriptions HEAD (2023-06-28)
    "milan": ("2201.11114", "19c4d58f849d82be8ad23cd3bd47908a0eacd8ed"),
    "davies": ("2501.02688", None),
    "convergence": ("2508.18226", None),
}

ENTRY_POINTS = {
    "snmf": ["interp.decompose:SNMF", "interp.decompose:SNMF.paper", "interp.decompose.snmf:snmf_step",
             "interp.decompose.read:find_strength", "interp.decompose.steering:sampled_generate",
             "interp.decompose.steering:diffmeans_directions", "interp.decompose.steering:concept_detection",
             "interp.decompose.steering:snmf_evaluation", "interp.decompose._judge:judge_sentence",
             "interp.decompose.hsnmf:HierarchicalSNMF"],
    "neuronpath": ["patching.paths:find_paths", "patching.paths:joint_attribution_score",
                   "patching.paths:compare_paths", "patching.paths:manipulate", "patching.paths:prune",
                   "patching.paths:path_similarity", "patching.paths:frequency_similarity",
                   "patching.paths.baselines:mean_gradient_paths", "patching.paths.baselines:influence_search"],
    "relp": ["patching:relevance_patching", "patching.relp:relp_rules", "patching:faithfulness"],
    "davies": ["interp.label:vocab_projection", "interp.label.vocab_agreement:top_token_agreement"],
    "convergence": ["probes:temporal_score", "probes:spatial_score"],
    "milan": ["interp.label.milan:unit_exemplars", "interp.label.milan:describe_units",
              "interp.label.milan:pmi_rerank", "interp.label.milan:RetrievalDescriber",
              "interp.label.milan:CaptionerDescriber"],
}

CASES = [(family, name) for family, names in ENTRY_POINTS.items() for name in names]


def _resolve(name: str):
    module, attr = name.split(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def provenance_problems(doc: str, arxiv: str, commit: str | None) -> list[str]:
    """What a docstring lacks: the paper's arXiv id, the commit (7 to 40 hex digits, a prefix of the one
    followed) or an explicit "no code", and a "Differences"/"differs" statement."""
    problems = []
    flat = " ".join(doc.split())
    if not re.search(r"arXiv:?\s*" + re.escape(arxiv), flat):
        problems.append(f"no 'arXiv {arxiv}'")
    if commit is None:
        if not re.search(r"\bno code\b", flat):
            problems.append("no 'no code' statement (the paper published none)")
    elif not any(commit.startswith(h) for h in re.findall(r"\b[0-9a-f]{7,40}\b", flat)):
        problems.append(f"no commit hash of {commit[:7]}")
    if not re.search(r"\bdiffer", flat, re.IGNORECASE):
        problems.append("no 'Differences' / 'differs'")
    return problems


@pytest.mark.parametrize("family,name", CASES, ids=[n for _, n in CASES])
def test_seed_entry_point_names_paper_commit_and_differences(family, name):
    arxiv, commit = FAMILIES[family]
    doc = inspect.getdoc(_resolve(name)) or ""
    assert not provenance_problems(doc, arxiv, commit), (name, provenance_problems(doc, arxiv, commit))


def test_the_provenance_check_can_fail():
    arxiv, commit = FAMILIES["snmf"]
    good = f"Source: Shafran et al. (arXiv {arxiv}); code at commit {commit[:7]}. Differences: none."
    assert provenance_problems(good, arxiv, commit) == []
    assert len(provenance_problems("Semi-NMF.", arxiv, commit)) == 3
    assert provenance_problems(good.replace(commit[:7], "deadbee"), arxiv, commit) == [f"no commit hash of {commit[:7]}"]
    assert provenance_problems(f"arXiv {arxiv}; differs.", arxiv, None) == ["no 'no code' statement (the paper published none)"]
