"""Natural-language explanations of units: the :class:`Explainer` protocol and three implementations.

In the style of OpenAI's neuron-explainer (Bills et al. 2023, "Language models can explain neurons in
language models") and EleutherAI's delphi (Paulo et al. 2024, "Automatically Interpreting Millions of
Features in LLMs"): an explainer reads a unit's evidence (top exemplars with the activating token
marked, vocabulary projections, n-grams, concept tests, phenomena) and writes a short explanation;
an explainer that can also *simulate* predicts per-token activations from an explanation, which
:mod:`interp.label.scoring` correlates with the real ones.

* :class:`TemplatedExplainer` (default): composes a label from the evidence, deterministic, offline.
* :class:`LocalModelExplainer`: prompts a local instruct model (``smollm2-135m`` from the zoo works
  offline; weak, but the explain-then-simulate loop runs with no network). Simulation uses the
  "all at once" trick of Bills et al.: one forward pass over the explanation followed by the tokens,
  reading the expected 0-9 digit after each token.
* :class:`OpenAIExplainer`: any OpenAI-compatible ``/v1/chat/completions`` endpoint. A failure
  (down, timeout, bad reply) raises :class:`ExplainerError`; report builders catch it, fall back to the
  templated label and note the failure.

>>> ev = UnitEvidence(unit=3, exemplars=[("the cat sat", "cat", 2.5)], top_tokens_out=["cats", "dog"])
>>> TemplatedExplainer().explain(ev).text
"fires on 'cat' (e.g. …the [cat] sat…); promotes 'cats', 'dog'"
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ExplainerError

__all__ = ["UnitEvidence", "Explanation", "Explainer", "TemplatedExplainer", "LocalModelExplainer",
           "OpenAIExplainer", "ExplainerError", "keyword_predicate"]


@dataclass
class UnitEvidence:
    """What an explainer may read about one unit.

    ``exemplars``: ``(context text, activating token text, activation)``, strongest first; the context
    text may mark the activating token. ``windows``: token strings and activations per exemplar (for
    prompts that show per-token activations).

    Parameters
    ----------
    unit : int
        The unit's index.
    name : str, optional
        The unit's name (e.g. ``"L3N120"``).
    exemplars : list of (str, str, float), optional
        ``(context text, activating token text, activation)``, strongest first.
    windows : list of (list of str, list of float), optional
        Token strings and their activations per exemplar.
    top_tokens_out : list of str, optional
        Tokens the unit's output promotes most (through the unembedding).
    top_tokens_in : list of str, optional
        Tokens whose embeddings drive the unit most.
    ngrams : list of (str, int), optional
        Frequent n-grams ending at the activating token, with their counts.
    concepts : list of str, optional
        Concept labels found for the unit.
    phenomena : list of str, optional
        Phenomena flagged for the unit (``"dead"``, ``"ngram-detector"``, ...).
    token_means : list of (str, float), optional
        Tokens with the highest mean activation, with that mean.
    """

    unit: int
    name: str = ""
    exemplars: list[tuple[str, str, float]] = field(default_factory=list)
    windows: list[tuple[list[str], list[float]]] = field(default_factory=list)
    top_tokens_out: list[str] = field(default_factory=list)
    top_tokens_in: list[str] = field(default_factory=list)
    ngrams: list[tuple[str, int]] = field(default_factory=list)
    concepts: list[str] = field(default_factory=list)
    phenomena: list[str] = field(default_factory=list)
    token_means: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Explanation:
    """An explanation: ``text``, who wrote it (``source``), the token strings it names (``tokens``, used
    by the detection score), and ``error`` when it is a fallback after a failure.

    Parameters
    ----------
    text : str
        The explanation.
    source : str
        The explainer's ``name`` (``"templated"``, ``"local"``, ``"openai"``, ...).
    tokens : list of str, optional
        Token strings the explanation names.
    error : str, optional
        Why the requested explainer failed, when this is a fallback; None otherwise.
    """

    text: str
    source: str
    tokens: list[str] = field(default_factory=list)
    error: str | None = None


@runtime_checkable
class Explainer(Protocol):
    """``explain(evidence) -> Explanation``; optionally ``simulate(explanation, tokens) -> activations``."""

    name: str

    def explain(self, evidence: UnitEvidence) -> Explanation:
        """The explanation of one unit.

        Parameters
        ----------
        evidence : UnitEvidence
            What is known about the unit.
        """
        ...


def _q(token: str) -> str:
    return repr(token.strip() or token)


def keyword_predicate(explanation: Explanation, token_strings: Sequence[str]) -> np.ndarray:
    """1.0 where a token string is one the explanation names (its ``tokens``, or quoted words in the text).

    Parameters
    ----------
    explanation : Explanation
        The explanation; its ``tokens`` (else the words quoted in its text) are the keywords.
    token_strings : sequence of str
        The tokens to test (compared stripped and lower-cased).
    """
    names = {t.strip().lower() for t in explanation.tokens if t.strip()}
    if not names:
        names = {m.strip().lower() for m in re.findall(r"'([^']{1,30})'|\"([^\"]{1,30})\"", explanation.text) for m in m if m}
    return np.array([1.0 if t.strip().lower() in names and t.strip() else 0.0 for t in token_strings])


class TemplatedExplainer:
    """A label composed from the evidence: phenomena, activating tokens, n-grams, vocabulary, concepts.

    Deterministic and offline; the default explainer.

    Parameters
    ----------
    max_tokens : int, optional
        Most tokens named per part of the label (default 3).
    """

    name = "templated"

    def __init__(self, max_tokens: int = 3) -> None:
        self.max_tokens = max_tokens

    def explain(self, evidence: UnitEvidence) -> Explanation:
        """A label composed from ``evidence`` (deterministic).

        Parameters
        ----------
        evidence : UnitEvidence
            What is known about the unit.
        """
        parts: list[str] = []
        named: list[str] = []
        if "dead" in evidence.phenomena:
            return Explanation("dead: never activates on the corpus", self.name)
        if evidence.concepts:
            parts.append("; ".join(evidence.concepts[:3]))
        if evidence.exemplars:
            counts: dict[str, int] = {}
            for _, tok, _ in evidence.exemplars:
                counts[tok] = counts.get(tok, 0) + 1
            ranked = sorted(counts, key=lambda t: -counts[t])
            share = counts[ranked[0]] / len(evidence.exemplars)
            picks = ranked[: self.max_tokens] if share < 0.5 else ranked[:1] + [t for t in ranked[1:self.max_tokens] if counts[t] > 1]
            named.extend(picks)
            ctx = next((c for c, t, _ in evidence.exemplars if t == picks[0]), evidence.exemplars[0][0])
            parts.append(f"fires on {', '.join(_q(t) for t in picks)} (e.g. …{ctx}…)")
        elif evidence.token_means:
            picks = [t for t, _ in evidence.token_means[: self.max_tokens]]
            named.extend(picks)
            parts.append(f"highest on {', '.join(_q(t) for t in picks)}")
        if evidence.ngrams and evidence.ngrams[0][1] >= 2 and "ngram-detector" in evidence.phenomena:
            parts.append(f"n-gram {_q(evidence.ngrams[0][0])}")
        if evidence.top_tokens_out:
            parts.append(f"promotes {', '.join(_q(t) for t in evidence.top_tokens_out[:self.max_tokens])}")
        shown = [p for p in evidence.phenomena if p not in {"ngram-detector"}]
        if shown:
            parts.insert(0, "[" + ", ".join(shown) + "]")
        text = "; ".join(parts) if parts else "no clear pattern"
        return Explanation(text.replace("; (", " ("), self.name, tokens=named)


_SYSTEM = ("You explain what a neuron in a language model responds to. You see text excerpts; the token where the "
           "neuron fires most is in [brackets]. Answer with one short phrase, no more than 12 words.")


def _prompt_lines(evidence: UnitEvidence, n: int = 6) -> str:
    lines = [f"{i + 1}. {ctx}" for i, (ctx, _, _) in enumerate(evidence.exemplars[:n])]
    if evidence.top_tokens_out:
        lines.append("Tokens it promotes: " + ", ".join(evidence.top_tokens_out[:5]))
    return "Excerpts:\n" + "\n".join(lines) + "\nThe neuron fires on"


class LocalModelExplainer:
    """Explain with a local instruct model (default: the zoo's ``smollm2-135m``), offline.

    Parameters
    ----------
    model, tokenizer:
        A TransformerBridge and its tokenizer; loaded from the zoo by name when ``model`` is a string.
    max_new_tokens:
        Length of the generated explanation.
    """

    name = "local"

    def __init__(self, model: Any = "smollm2-135m", tokenizer: Any = None, max_new_tokens: int = 16) -> None:
        self._model, self._tokenizer = model, tokenizer
        self.max_new_tokens = max_new_tokens

    def _load(self) -> tuple[Any, Any]:
        if isinstance(self._model, str):
            from .. import models

            self._model, pre = models.load(self._model)
            self._tokenizer = self._tokenizer or getattr(self._model, "tokenizer", None) or pre
        tok = self._tokenizer or getattr(self._model, "tokenizer", None)
        if tok is None:
            raise ExplainerError("the local explainer needs a tokenizer")
        return self._model, tok

    def _chat_ids(self, tok: Any, user: str) -> Any:
        import torch

        messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]
        try:
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
            if not isinstance(ids, torch.Tensor):
                ids = ids["input_ids"]
        except Exception:  # noqa: BLE001 - a tokenizer without chat template
            ids = tok(_SYSTEM + "\n" + user, return_tensors="pt")["input_ids"]
        return ids

    def explain(self, evidence: UnitEvidence) -> Explanation:
        """Greedy-decoded explanation of the unit's exemplars (``"no exemplars to explain"`` without any).

        Parameters
        ----------
        evidence : UnitEvidence
            What is known about the unit (its exemplars and promoted tokens are shown to the model).
        """
        import torch

        if not evidence.exemplars:
            return Explanation("no exemplars to explain", self.name)
        model, tok = self._load()
        ids = self._chat_ids(tok, _prompt_lines(evidence))
        out = ids
        with torch.no_grad():
            for _ in range(self.max_new_tokens):  # greedy decoding, deterministic
                logits = model(out)
                nxt = logits[0, -1].argmax().view(1, 1)
                if int(nxt) == getattr(tok, "eos_token_id", -1):
                    break
                out = torch.cat([out, nxt], dim=1)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip().split("\n")[0].strip()
        text = text or "(empty reply)"
        named = [t for _, t, _ in evidence.exemplars if t.strip() and t.strip().lower() in text.lower()]
        return Explanation(text, self.name, tokens=sorted(set(named)))

    def simulate(self, explanation: Explanation, token_strings: Sequence[str]) -> np.ndarray:
        """Predicted activation 0-9 per token (expected digit after each token, one forward pass).

        Parameters
        ----------
        explanation : Explanation
            The explanation to simulate.
        token_strings : sequence of str
            The tokens, in order.
        """
        import torch

        model, tok = self._load()
        head = (f"Neuron explanation: {explanation.text}\nFor each token, the neuron's activation from 0 to 9:\n")
        digit_ids = [tok.encode(str(d), add_special_tokens=False)[-1] for d in range(10)]
        ids = tok.encode(head, add_special_tokens=False)
        read_at = []
        for t in token_strings:
            ids += tok.encode(f"{t.strip() or '_'}\t", add_special_tokens=False)
            read_at.append(len(ids) - 1)
            ids += tok.encode("0\n", add_special_tokens=False)
        with torch.no_grad():
            logits = model(torch.tensor([ids]))[0]
        probs = torch.softmax(logits[read_at][:, digit_ids].float(), -1)
        return (probs * torch.arange(10.0)).sum(-1).numpy()


class OpenAIExplainer:
    """Explain with an OpenAI-compatible chat endpoint (``{base_url}/chat/completions``).

    No test needs an endpoint: a down endpoint raises :class:`ExplainerError`, which report builders
    turn into a templated fallback plus a note. The API key is read from ``api_key`` (never logged).

    Parameters
    ----------
    base_url : str, optional
        Base URL of the endpoint (default ``"http://localhost:8000/v1"``; a trailing ``/`` is dropped).
    model : str, optional
        Model name sent to the endpoint (default ``"gpt-4o-mini"``).
    api_key : str, optional
        Bearer token; None: no ``Authorization`` header.
    timeout : float, optional
        Request timeout in seconds (default 10).
    max_tokens : int, optional
        Most tokens of the reply (default 40).
    """

    name = "openai"

    def __init__(self, base_url: str = "http://localhost:8000/v1", model: str = "gpt-4o-mini", api_key: str | None = None,
                 timeout: float = 10.0, max_tokens: int = 40) -> None:
        self.base_url, self.model, self.api_key = base_url.rstrip("/"), model, api_key
        self.timeout, self.max_tokens = timeout, max_tokens

    def explain(self, evidence: UnitEvidence) -> Explanation:
        """One request to the endpoint (temperature 0); any failure raises :class:`ExplainerError`.

        Parameters
        ----------
        evidence : UnitEvidence
            What is known about the unit (its exemplars and promoted tokens are sent).
        """
        body = {"model": self.model, "max_tokens": self.max_tokens, "temperature": 0,
                "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _prompt_lines(evidence)}]}
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - user-given endpoint
                reply = json.loads(resp.read().decode())
            text = reply["choices"][0]["message"]["content"].strip()
        except (urllib.error.URLError, OSError, TimeoutError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise ExplainerError(f"explainer endpoint {self.base_url} failed: {type(exc).__name__}: {exc}") from exc
        named = [t for _, t, _ in evidence.exemplars if t.strip() and t.strip().lower() in text.lower()]
        return Explanation(text, self.name, tokens=sorted(set(named)))


def explain_safely(explainer: Explainer, evidence: UnitEvidence, fallback: Explainer | None = None) -> Explanation:
    """``explainer.explain`` that never raises: on :class:`ExplainerError` (or any failure of a non-default
    explainer) it returns the fallback's explanation with ``error`` set.

    Parameters
    ----------
    explainer : Explainer
        The explainer to try.
    evidence : UnitEvidence
        What is known about the unit.
    fallback : Explainer, optional
        Explainer used after a failure; None: :class:`TemplatedExplainer`.
    """
    try:
        return explainer.explain(evidence)
    except Exception as exc:  # noqa: BLE001 - a failing explainer must not break a report
        fb = (fallback or TemplatedExplainer()).explain(evidence)
        fb.error = f"{getattr(explainer, 'name', type(explainer).__name__)} explainer failed: {exc}"
        return fb
