"""The concept/fluency judge of Shafran, Geiger & Geva's steering evaluation, behind the explainer interface.

Prompts, rating format and harmonic mean are copied from ``experiments/causal/output_score_llm_judge.py``
of ``ordavid-s/snmf-mlp-decomposition`` (commit ab58c78): each steered sentence gets a concept score and a
fluency score in {0, 1, 2} from a judge model (theirs: gpt-4o-mini at temperature 0), combined as their
harmonic mean (0 when either is 0).

The judge is any of :mod:`interp.label.explain`'s explainers or any object with ``complete(prompt) ->
str``: an :class:`~interp.label.explain.OpenAIExplainer` sends the authors' prompt to its endpoint and
parses ``Rating: [[n]]``; a :class:`~interp.label.explain.LocalModelExplainer` (any local causal LM, e.g.
the zoo's ``smollm2-135m``) is read in one forward pass: the prompt, then ``Rating: [[`` as the start of
the reply, and the most likely of the digits 0, 1, 2 (a difference from the authors, whose judge writes an
explanation before its rating; a tiny model cannot be trusted to keep the format).
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.request
from typing import Any

from ..errors import ConfigError, ExplainerError

__all__ = ["CONCEPT_PROMPT", "FLUENCY_PROMPT", "parse_rating", "harmonic_mean", "judge_sentence"]

CONCEPT_PROMPT = """Please act as an impartial judge and evaluate whether the specified concept is presented in the sentence fragment provided below. Focus solely on whether the concept is clearly incorporated, without regard for grammar or logical coherence.
Begin your evaluation by providing a short explanation of whether the concept is clearly incorporated.
Point out references to the concept in the fragment, noting any minimal or awkward incorporations.
After providing your explanation, rate the concept's relevance on a scale from 0 to 2, where 0 indicates the concept is not present at all, 1 indicates the concept is somewhat present but minimally or awkwardly incorporated, and 2 indicates the concept is more fully and effectively incorporated, with stronger and more natural integration.
Provide your rating using this exact format: "Rating: [[score]]".

[Concept Start]
{concept}
[Concept End]

[Sentence Fragment Start]
{sentence}
[Sentence Fragment End]"""  # noqa: E501 - the authors' prompt, verbatim

FLUENCY_PROMPT = """Please act as an impartial judge and evaluate the fluency of the sentence fragment provided below. Focus solely on fluency, disregarding its completeness, relevance, coherence with any broader context, or informativeness.
Begin your evaluation by briefly describing the fluency of the sentence, noting any unnatural phrasing, awkward transitions, grammatical errors, or repetitive structures that may hinder readability.
After providing your explanation, rate the sentence's fluency on a scale from 0 to 2, where 0 indicates the sentence is not fluent and highly unnatural (e.g., incomprehensible or repetitive), 1 indicates it is somewhat fluent but contains noticeable errors or awkward phrasing, and 2 indicates the sentence is fluent and almost perfect.
Provide your rating using this exact format: "Rating: [[score]]".

[Sentence Fragment Start]
{sentence}
[Sentence Fragment End]"""  # noqa: E501 - the authors' prompt, verbatim

_RATING = re.compile(r"Rating:\s*(?:\[\[(\d+)\]\]|(\d+))")


def parse_rating(text: str) -> int | None:
    """The authors' ``extract_rating``: ``Rating: [[n]]`` or ``Rating: n``; None when absent."""
    match = _RATING.search(text)
    if not match:
        return None
    return int(match.group(1) if match.group(1) is not None else match.group(2))


def harmonic_mean(scores: list[float]) -> float:
    """The authors' harmonic mean: 0 when any score is 0."""
    if any(s == 0 for s in scores):
        return 0.0
    return len(scores) / sum(1.0 / s for s in scores)


def _openai_complete(judge: Any, prompt: str) -> str:
    body = {"model": judge.model, "temperature": 0.0, "messages": [{"role": "user", "content": prompt}]}
    req = urllib.request.Request(f"{judge.base_url}/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {judge.api_key}"} if judge.api_key else {})})
    try:
        with urllib.request.urlopen(req, timeout=judge.timeout) as resp:  # noqa: S310 - user-given endpoint
            return json.loads(resp.read().decode())["choices"][0]["message"]["content"]
    except (urllib.error.URLError, OSError, TimeoutError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ExplainerError(f"judge endpoint {judge.base_url} failed: {type(exc).__name__}: {exc}") from exc


def _local_rating(judge: Any, prompt: str) -> int:
    """Most likely digit 0-2 after the prompt and ``Rating: [[`` (one forward pass of a local LM)."""
    import torch

    model, tok = judge._load()
    try:
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    except Exception:  # noqa: BLE001 - a tokenizer without chat template
        text = prompt + "\n"
    ids = tok.encode(text + "Rating: [[", add_special_tokens=False, return_tensors="pt")
    digits = [tok.encode(str(d), add_special_tokens=False)[-1] for d in range(3)]
    with torch.no_grad():
        logits = model(ids)[0, -1]
    return int(logits[digits].argmax())


def _rate(judge: Any, prompt: str) -> int | None:
    # interp.label's explainers are recognised by what they have (decompose sits below label: no import)
    if hasattr(judge, "complete"):
        return parse_rating(judge.complete(prompt))
    if all(hasattr(judge, a) for a in ("base_url", "model", "api_key", "timeout")):  # OpenAIExplainer
        return parse_rating(_openai_complete(judge, prompt))
    if callable(getattr(judge, "_load", None)):  # LocalModelExplainer
        return _local_rating(judge, prompt)
    raise ConfigError(f"a judge must be an interp.label LocalModelExplainer or OpenAIExplainer, or have "
                      f"complete(prompt) -> str; got {type(judge).__name__}")


def judge_sentence(judge: Any, sentence: str, concept: str, attempts: int = 2) -> dict[str, Any]:
    """Concept and fluency scores (0-2) of one steered sentence and their harmonic mean.

    Source: Shafran, Geiger & Geva 2025 (arXiv 2506.10920; ACL 2026); code ``ordavid-s/snmf-mlp-decomposition``
    at commit ab58c78 (``experiments/causal/output_score_llm_judge.py``: prompts, rating format, harmonic mean).
    Differences: a local model is read in one forward pass (the most likely of 0, 1, 2 after ``Rating: [[``)
    where their gpt-4o-mini writes an explanation first.

    A rating that cannot be read after ``attempts`` tries counts 0, as in the authors' code; the row says
    so (``judged=False``) so the failure is never hidden.
    """
    scores, judged = [], True
    for template in (CONCEPT_PROMPT.format(concept=concept, sentence=sentence), FLUENCY_PROMPT.format(sentence=sentence)):
        value = None
        for _ in range(max(1, attempts)):
            value = _rate(judge, template)
            if value is not None:
                break
        if value is None:
            judged, value = False, 0
        scores.append(value)
    score = harmonic_mean(scores)
    return {"concept_score": scores[0], "fluency_score": scores[1], "score": score if math.isfinite(score) else 0.0,
            "judged": judged}
