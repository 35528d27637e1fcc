"""The causal and detection evaluation of SNMF features as Shafran, Geiger & Geva run it.

Paper: "Decomposing MLP Activations into Interpretable Features via Semi-Nonnegative Matrix
Factorization" (arXiv 2506.10920; ACL 2026). Code followed: ``ordavid-s/snmf-mlp-decomposition`` at
commit ab58c78:

* steering (``intervention/intervener.py``; ``experiments/causal/generate_causal_output.py``): add
  ``strength * unit(direction)`` at the site at every position; the strength is bisected in [1, 2000]
  for 20 steps so that KL(base || steered) of the next token after ``"I think that"`` hits each of
  {0.025, 0.05, 0.1, 0.15, 0.25, 0.35, 0.5} within 0.01 (:func:`~interp.decompose.read.find_strength`);
  at each strength found, 8 sentences of 50 tokens are *sampled* with ``+strength`` and ``-strength``
  (``top_k=30, top_p=0.3`` handed to TransformerLens's ``sample_logits``, which applies ``top_k`` and
  ignores ``top_p`` when both are given: so do we, :func:`sampled_generate`);
* the judge (``experiments/causal/output_score_llm_judge.py``): concept and fluency in {0, 1, 2} and
  their harmonic mean, through :mod:`interp.decompose._judge`;
* baselines: DiffMeans (``experiments/baselines/diffmean.py``: mean activation of the concept's
  sentences minus that of the others, unit norm; :func:`diffmeans_directions`) and SAE features (any
  fitted :mod:`interp.decompose` SAE; the authors use Llama Scope / Gemma Scope / a GPT-2 SAE);
* concept detection (``experiments/evaluation/concept_evaluator.py``, ``evaluate_tensor``): per
  sentence, the maximum over its tokens (BOS and padding left out) of r², cosine, Pearson r and MSE
  between the unit direction and the token's activation (:func:`concept_detection`).

Where it differs: no Gemma ``ln2_post`` mapping (steer at the site the direction lives in); the
generation is re-run in full each step (no KV cache: the same numbers, slower); the random stream is
our ``seed``, not theirs; the judge is any explainer of :mod:`interp.label.explain` (a local model is
read in one forward pass, see :mod:`interp.decompose._judge`), not gpt-4o-mini; the descriptions the
judge compares against are passed in (theirs come from gpt-4o-mini).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import engine
from ..errors import ConfigError, InputTypeError
from ..results import Result, themed
from ._judge import judge_sentence
from .read import _tokens, component_directions, find_strength, steer

__all__ = ["PAPER_KL_TARGETS", "sampled_generate", "diffmeans_directions", "concept_detection", "ConceptDetection",
           "snmf_evaluation", "SteeringEvaluation"]

#: the KL targets of ``generate_causal_output.py`` (``--target-kls`` default)
PAPER_KL_TARGETS = (0.025, 0.05, 0.1, 0.15, 0.25, 0.35, 0.5)


def _filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None, temperature: float) -> torch.Tensor:
    """TransformerLens ``sample_logits``'s filtering: temperature, then top-k, *else* top-p."""
    logits = logits / temperature
    if top_k is not None:
        top_k = min(int(top_k), logits.shape[-1])
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, -float("inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        remove = sorted_logits.softmax(-1).cumsum(-1) > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        return logits.masked_fill(remove.scatter(-1, order, remove), -float("inf"))
    return logits


def sampled_generate(model: Any, prompt: str | torch.Tensor, site: str, direction: torch.Tensor, strength: float,
                     max_new_tokens: int = 50, top_k: int | None = 30, top_p: float | None = 0.3,
                     temperature: float = 1.0, n_samples: int = 8, seed: int = 0) -> list[str] | torch.Tensor:
    """``n_samples`` sampled continuations of ``prompt`` with ``strength * unit(direction)`` added at ``site``.

    Source: Shafran, Geiger & Geva 2025 (arXiv 2506.10920; ACL 2026); code ``ordavid-s/snmf-mlp-decomposition``
    at commit ab58c78. Differences: no KV cache (each token re-runs the prefix: the same numbers, slower); the
    random stream is ``seed``'s, not their global one.

    ``Intervener.generate_with_manipulation_sampling`` of Shafran et al. (commit ab58c78) with their
    defaults (50 tokens, ``top_k=30, top_p=0.3``, 8 sentences). The token is drawn as TransformerLens's
    ``sample_logits`` draws it (``Categorical(logits).sample()`` after temperature and top-k, or top-p only
    when ``top_k`` is None), from the torch random stream seeded with ``seed`` (the caller's stream is left
    as it was). Returns strings when the model has a tokenizer, else the token tensor.

    Parameters
    ----------
    model : TransformerBridge
        The language model.
    prompt : str or torch.Tensor
        A text or token ids (the first row is used).
    site : str
        The hook name the direction is added at.
    direction : torch.Tensor
        The steering direction ``(d,)`` (unit-normalised before use).
    strength : float
        The multiple of the unit direction added (negative steers away).
    max_new_tokens : int
        Tokens sampled per continuation.
    top_k : int, optional
        Keep the ``top_k`` most likely tokens (None: top-p only).
    top_p : float, optional
        Nucleus threshold, used only when ``top_k`` is None.
    temperature : float
        Divides the logits (> 0).
    n_samples : int
        Continuations sampled.
    seed : int
        Seed of the sampling.
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0 for sampling, got {temperature}")
    tokens = _tokens(model, prompt)[:1].repeat(int(n_samples), 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(max_new_tokens):
            logits = steer(model, tokens, site, direction, strength)[:, -1].float()
            filtered = _filter_logits(logits, top_k, top_p, temperature)
            nxt = torch.distributions.Categorical(logits=filtered).sample()
            tokens = torch.cat([tokens, nxt[:, None].to(tokens)], dim=1)
    tok = getattr(model, "tokenizer", None)
    return [tok.decode(t) for t in tokens.tolist()] if tok is not None else tokens


# ------------------------------------------------------------------------------ baselines and detection


def _token_rows(model: Any, texts: Sequence[str], site: str, batch_size: int) -> list[torch.Tensor]:
    """Per text, the site's activations of its tokens with BOS and padding left out: ``(n_tokens, d)``."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InputTypeError("texts must be a list of strings")
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ConfigError("concept sentences need a model with a tokenizer (model.tokenizer)")
    drop = {i for i in (getattr(tok, "bos_token_id", None), getattr(tok, "pad_token_id", None)) if i is not None}
    out = []
    for start in range(0, len(texts), batch_size):
        for text in texts[start:start + batch_size]:
            ids = _tokens(model, text)
            with torch.no_grad():
                acts = engine.record(model, ids, [site], stop=True).acts[site][0].float()
            keep = torch.tensor([int(i) not in drop for i in ids[0].tolist()])
            out.append(acts[keep] if keep.any() else acts[-1:])
    return out


def diffmeans_directions(model: Any, site: str, concepts: Mapping[str, Sequence[str]],
                         batch_size: int = 16) -> tuple[list[str], torch.Tensor]:
    """One unit DiffMeans direction per concept: mean token activation of its sentences minus the others'.

    Source: Shafran, Geiger & Geva 2025 (arXiv 2506.10920; ACL 2026); code ``ordavid-s/snmf-mlp-decomposition``
    at commit ab58c78. Differences: a concept's negatives are the other concepts' sentences (theirs: the
    concept's generated neutral sentences, ``experiments/causal/generate_diffmean_factors.py``); BOS is left out
    with padding (theirs drops padding only).

    ``DiffMean.fit`` of Shafran et al. (``experiments/baselines/diffmean.py``, commit ab58c78) with the
    other concepts' sentences as the negatives. Returns ``(names, directions (n_concepts, d))``.

    Parameters
    ----------
    model : TransformerBridge
        The language model.
    site : str
        The hook name whose token activations are averaged.
    concepts : Mapping[str, Sequence[str]]
        ``{concept name: sentences}``, at least two concepts.
    batch_size : int
        Sentences per forward pass.
    """
    if len(concepts) < 2:
        raise ConfigError("DiffMeans needs at least two concepts (the others' sentences are the negatives)")
    means = {name: torch.cat(_token_rows(model, list(texts), site, batch_size)) for name, texts in concepts.items()}
    names, rows = list(means), []
    for name in names:
        neg = torch.cat([means[o] for o in names if o != name])
        diff = means[name].mean(0) - neg.mean(0)
        rows.append(diff / (diff.norm() + 1e-8))
    return names, torch.stack(rows)


def _scores(direction: torch.Tensor, acts: torch.Tensor) -> dict[str, float]:
    """``explanation_score(direction, token_act, metric)`` for the four metrics, max over tokens."""
    a = direction[None, :].expand_as(acts)
    b = acts
    r2 = 1 - ((b - a) ** 2).sum(1) / (((b - b.mean(1, keepdim=True)) ** 2).sum(1) + 1e-8)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    ac, bc = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    corr = (ac * bc).sum(1) / (ac.norm(dim=1) * bc.norm(dim=1) + 1e-8)
    mse = ((a - b) ** 2).mean(1)
    return {"r2": float(r2.max()), "cosine": float(cos.max()), "corr": float(corr.max()), "mse": float(mse.max())}


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a concept sentence > score of a neutral one), ties counting half."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


@dataclass
class ConceptDetection(Result):
    """Per-sentence detection scores of feature directions on concept vs neutral sentences.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per (method, component, group, sentence) with the four metrics of the authors'
        ``ConceptEvaluator.evaluate_tensor`` (each the max over the sentence's tokens).
    """

    scores: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """Per (method, component): mean cosine on concept and neutral sentences, their gap, and the AUC."""
        rows = []
        for (method, comp), g in self.scores.groupby(["method", "component"], sort=False):
            pos = g[g.group == "concept"]["cosine"].to_numpy()
            neg = g[g.group == "neutral"]["cosine"].to_numpy()
            rows.append({"method": method, "component": comp, "cosine_concept": float(pos.mean()),
                         "cosine_neutral": float(neg.mean()), "gap": float(pos.mean() - neg.mean()), "auc": _auc(pos, neg)})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """Mean detection AUC and cosine gap per method."""
        frame = self.to_frame().groupby("method", sort=False)[["auc", "gap"]].mean()
        lines = [f"  {m}: AUC {r.auc:.3f}, cosine gap {r.gap:+.4f}" for m, r in frame.iterrows()]
        return "Concept detection (max over tokens, concept vs neutral sentences)\n" + "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Detection AUC per component, one colour per method."""
        import plotly.express as px

        fig = px.bar(self.to_frame(), x="component", y="auc", color="method", barmode="group")
        return themed(fig, title=kwargs.get("title", "concept detection AUC"))


def _direction_sets(directions: Any) -> dict[str, torch.Tensor]:
    if isinstance(directions, Mapping):
        return {str(k): component_directions(v) for k, v in directions.items()}
    return {"feature": component_directions(directions)}


def concept_detection(model: Any, site: str, directions: Any, concept_texts: Mapping[Any, Sequence[str]] | Sequence[str],
                      neutral_texts: Sequence[str], batch_size: int = 16) -> ConceptDetection:
    """Detection scores of each direction on its concept's sentences vs neutral sentences.

    Source: Shafran, Geiger & Geva 2025 (arXiv 2506.10920; ACL 2026); code ``ordavid-s/snmf-mlp-decomposition``
    at commit ab58c78 (``experiments/evaluation/concept_evaluator.py``). Differences: the directions of several
    methods are scored in one call (theirs: one script per method).

    ``directions``: an estimator, a ``(n, d)`` tensor, or ``{method: either}``. ``concept_texts``: one
    list of sentences for all components, or ``{component: sentences}`` (as the authors generate
    sentences per feature). As ``experiments/concept_detection/benchmark.py`` (commit ab58c78).

    Parameters
    ----------
    model : TransformerBridge
        The language model.
    site : str
        The hook name whose token activations are scored against the directions.
    directions : Any
        An estimator with ``components_``, an ``(n, d)`` tensor, or ``{method: either}``.
    concept_texts : Sequence[str] or Mapping
        One list of sentences for all components, or ``{component index: sentences}``.
    neutral_texts : Sequence[str]
        Sentences of no particular concept.
    batch_size : int
        Sentences per forward pass.
    """
    sets = _direction_sets(directions)
    neutral = _token_rows(model, list(neutral_texts), site, batch_size)
    shared = None if isinstance(concept_texts, Mapping) else _token_rows(model, list(concept_texts), site, batch_size)
    rows = []
    for method, dirs in sets.items():
        for comp in range(dirs.shape[0]):
            if shared is None:
                key = comp if comp in concept_texts else str(comp)
                if key not in concept_texts:
                    continue
                pos = _token_rows(model, list(concept_texts[key]), site, batch_size)
            else:
                pos = shared
            for group, acts_list in (("concept", pos), ("neutral", neutral)):
                for i, acts in enumerate(acts_list):
                    rows.append({"method": method, "component": comp, "group": group, "sentence": i,
                                 **_scores(dirs[comp].to(acts), acts)})
    if not rows:
        raise ConfigError("no component had concept sentences; key concept_texts by component index")
    return ConceptDetection(pd.DataFrame(rows))


# ------------------------------------------------------------------------------ the whole protocol


@dataclass
class SteeringEvaluation(Result):
    """Steered generations of each method's features at the paper's KL targets, with the judge's scores.

    ``generations``: one row per (method, component, target_kl, sign, sentence) with the ``strength``
    found, the ``kl`` it gave, whether the search ``converged`` (targets the search missed have no
    sentences, as in the authors' code), the ``sentence``, and ``concept_score``, ``fluency_score``
    (0-2) and their harmonic mean ``score`` (NaN without a judge).

    Parameters
    ----------
    generations : pandas.DataFrame
        The rows described above.
    detection : ConceptDetection, optional
        The concept-detection scores, when concept sentences were given.
    """

    generations: pd.DataFrame
    detection: ConceptDetection | None = None

    def to_frame(self) -> pd.DataFrame:
        """Mean judge scores per method and KL target (the paper's steering comparison)."""
        g = self.generations
        return (g.groupby(["method", "target_kl"], sort=False)
                .agg(score=("score", "mean"), concept_score=("concept_score", "mean"),
                     fluency_score=("fluency_score", "mean"), n_sentences=("sentence", "count"))
                .reset_index())

    def summary(self) -> str:
        """Mean harmonic score per method, searches that missed their target, and the detection summary."""
        g = self.generations
        per = g.groupby("method", sort=False)["score"].mean()
        text = ["SNMF steering evaluation (Shafran et al. protocol): mean judge score (0-2, harmonic mean)"]
        text += [f"  {m}: {v:.3f}" if np.isfinite(v) else f"  {m}: not judged" for m, v in per.items()]
        missed = g[~g.converged].drop_duplicates(["method", "component", "target_kl"])
        if len(missed):
            text.append(f"  {len(missed)} (method, component, KL target) searches missed their target: no sentences")
        if "judged" in g and (~g.judged.fillna(True).astype(bool)).any():
            text.append(f"  {int((~g.judged.fillna(True).astype(bool)).sum())} sentences: the judge's rating was unreadable (scored 0)")
        if self.detection is not None:
            text.append(self.detection.summary())
        return "\n".join(text)

    def plot(self, **kwargs: Any) -> Any:
        """Mean judge score against the KL target, one line per method."""
        import plotly.express as px

        fig = px.line(self.to_frame(), x="target_kl", y="score", color="method", markers=True)
        return themed(fig, title=kwargs.get("title", "steering score vs KL target"))


def snmf_evaluation(model: Any, site: str, snmf: Any, *, baselines: Mapping[str, Any] | None = None,
                    components: Sequence[int] | None = None, prompt: str = "I think that",
                    target_kls: Sequence[float] = PAPER_KL_TARGETS, signs: Sequence[float] = (1.0, -1.0),
                    tol: float = 0.01, search: str = "bisect", n_samples: int = 8, max_new_tokens: int = 50,
                    top_k: int | None = 30, top_p: float | None = 0.3, judge: Any = None,
                    descriptions: Mapping[str, Sequence[str]] | None = None,
                    concept_texts: Mapping[Any, Sequence[str]] | Sequence[str] | None = None,
                    neutral_texts: Sequence[str] | None = None, seed: int = 0) -> SteeringEvaluation:
    """Shafran et al.'s steering evaluation of ``snmf``'s features beside ``baselines``, in one call.

    Source: Shafran, Geiger & Geva 2025 (arXiv 2506.10920; ACL 2026); code ``ordavid-s/snmf-mlp-decomposition``
    at commit ab58c78 (``experiments/causal/``, ``experiments/concept_detection/``). Differences: the judge is
    any explainer (theirs: gpt-4o-mini), the descriptions are passed in, there is no Gemma ``ln2_post`` mapping
    (steering happens at the site the direction lives in), and generation re-runs the prefix (no KV cache).

    For each method (``"SNMF"`` and each baseline: an estimator such as a fitted SAE, or a ``(n, d)``
    tensor such as :func:`diffmeans_directions`'s) and each component: the strength for every KL
    target (:func:`~interp.decompose.read.find_strength`, ``search="bisect"``: [1, 2000], 20 steps), then
    ``n_samples`` sampled sentences with ``+strength`` and ``-strength`` (:func:`sampled_generate`),
    scored by ``judge`` against ``descriptions[method][component]`` (``experiments/causal/
    output_score_llm_judge.py``). With ``concept_texts`` and ``neutral_texts`` the concept-detection
    score is added (:func:`concept_detection`). The defaults are the authors' (module docstring).

    Parameters
    ----------
    model : TransformerBridge
        The language model.
    site : str
        The hook name the direction is added at.
    snmf : Any
        The fitted :class:`SNMF` (or any estimator with ``components_``), reported as ``"SNMF"``.
    baselines : Mapping[str, Any], optional
        ``{name: estimator or (n, d) tensor}`` compared beside it.
    components : Sequence[int], optional
        Component indices evaluated (default all; indices past a method's count are skipped).
    prompt : str
        The prompt the KL is measured after and the sentences continue.
    target_kls : Sequence[float]
        KL targets (default the paper's seven).
    signs : Sequence[float]
        Steer with ``sign * strength`` for each sign.
    tol : float
        How close the KL must come to each target.
    search : {"bisect", "double"}
        The strength search of :func:`~interp.decompose.read.find_strength`.
    n_samples : int
        Sentences sampled per (component, target, sign).
    max_new_tokens : int
        Tokens per sentence.
    top_k : int, optional
        Top-k sampling (None: top-p only).
    top_p : float, optional
        Nucleus threshold, used only when ``top_k`` is None.
    judge : Any, optional
        An explainer of :mod:`interp.label.explain` that scores each sentence (default: no scores).
    descriptions : Mapping[str, Sequence[str]], optional
        ``{method: one description per component}``; required with ``judge``.
    concept_texts : Sequence[str] or Mapping, optional
        Sentences of each concept for :func:`concept_detection`.
    neutral_texts : Sequence[str], optional
        Neutral sentences (required with ``concept_texts``).
    seed : int
        Seed of the sampling.
    """
    methods = {"SNMF": snmf, **dict(baselines or {})}
    sets = _direction_sets(methods)
    if judge is not None:
        if descriptions is None:
            raise ConfigError("the judge scores sentences against each feature's description: pass "
                              "descriptions={method: [text per component]}")
        for method, dirs in sets.items():
            n_needed = max(components) + 1 if components is not None else dirs.shape[0]
            if len(descriptions.get(method, ())) < min(n_needed, dirs.shape[0]):
                raise ConfigError(f"descriptions[{method!r}] needs one text per component ({dirs.shape[0]})")
    rows = []
    for method, dirs in sets.items():
        comps = [c for c in (components if components is not None else range(dirs.shape[0])) if c < dirs.shape[0]]
        for comp in comps:
            for target in target_kls:
                found = find_strength(model, prompt, site, dirs[comp], target, tol=tol, search=search)
                base = {"method": method, "component": comp, "target_kl": target, "strength": abs(found.strength),
                        "kl": found.kl, "converged": found.converged}
                if not found.converged:
                    rows.append({**base, "sign": np.nan, "sentence": None, "concept_score": np.nan,
                                 "fluency_score": np.nan, "score": np.nan, "judged": None})
                    continue
                for sign in signs:
                    texts = sampled_generate(model, prompt, site, dirs[comp], sign * abs(found.strength),
                                             max_new_tokens=max_new_tokens, top_k=top_k, top_p=top_p,
                                             n_samples=n_samples, seed=seed)
                    for text in texts:
                        judged = {"concept_score": np.nan, "fluency_score": np.nan, "score": np.nan, "judged": None}
                        if judge is not None:
                            judged = judge_sentence(judge, str(text), descriptions[method][comp])
                        rows.append({**base, "sign": sign, "sentence": text, **judged})
    detection = None
    if concept_texts is not None:
        if neutral_texts is None:
            raise ConfigError("concept detection needs neutral_texts beside concept_texts")
        detection = concept_detection(model, site, methods, concept_texts, neutral_texts)
    return SteeringEvaluation(pd.DataFrame(rows), detection)
