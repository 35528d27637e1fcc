"""Labeling pipelines: model neurons over a corpus, attention heads, and recorded units.

Each pipeline returns a :class:`LabelResult`: an index table (one row per unit: label, score,
phenomena) plus everything the report's unit cards show. ``Report(title).add(result)`` places it
(overview, sortable index and one card per unit); :func:`interp.label.report.build_label_report`
writes a report of several results.

* :func:`label_neurons`: MLP neurons (or any site) of a TransformerBridge over a token corpus, in one
  streaming pass (:class:`~interp.label.stats.UnitStats`) plus a held-out pass for scoring.
* :func:`label_heads`: attention heads by their previous-token / induction / duplicate-token scores,
  labeled on one token set and scored on another.
* :func:`label_recordings`: recorded units (C. elegans neurons, hippocampal units...) by concept
  tests against behaviour annotations, pooled across individuals by name (circular shifts, or whole
  trials with ``groups``); labeled on the first part of each recording and scored on the rest.
* :func:`label_place_cells`: hippocampal place cells with their fields.

>>> model, tok = interp.models.load("smollm2-135m")                                 # doctest: +SKIP
>>> res = label_neurons(model, "blocks.5.mlp.hook_post", n_tokens=20_000)         # doctest: +SKIP
>>> res.to_frame().sort_values("score", ascending=False).head()                   # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import engine
from ..engine.distributed import gather, share
from ..errors import ConfigError, InputTypeError
from ..results import Result, themed
from .concepts import ConceptTests
from .explain import Explainer, Explanation, TemplatedExplainer, UnitEvidence, explain_safely, keyword_predicate
from .heads import HeadScores, head_scores
from .phenomena import Phenomena, detect_phenomena, exemplar_ngrams
from .scoring import detection_auroc, simulation_correlation
from .spatial import PlaceFields
from .stats import UnitStats, UnitStatsResult
from .vocab import VocabProjection, decode_tokens, vocab_projection

__all__ = ["LabelResult", "label_neurons", "label_heads", "text_corpus", "stream_site"]


@dataclass
class LabelResult(Result):
    """Labels of a set of units and the evidence behind them.

    ``table``: one row per unit (``unit``, ``name``, ``layer``, ``label``, ``score``, ``score_kind``,
    ``simulation``, ``phenomena``, ``explainer``, ``error``); the other fields hold what the report's
    cards show and may be None for a kind of units that lacks them.

    Parameters
    ----------
    title : str
        Title of the result (report section heading).
    kind : str
        What the units are: ``"neurons"``, ``"heads"``, ``"recording"`` or ``"place"``.
    site : str
        Where the units are (a hook name / module path, or the recording's name).
    table : pandas.DataFrame
        One row per unit (see above).
    stats : UnitStatsResult, optional
        Exemplars and activation statistics of the units.
    decode : callable, optional
        Token ids -> strings (e.g. a :class:`CachedDecoder`).
    vocab_out, vocab_in : VocabProjection, optional
        The tokens each unit promotes, and the tokens that drive it.
    phenomena : Phenomena, optional
        The phenomena detected per unit.
    concepts : ConceptTests, optional
        The concept (annotation) tests per unit.
    heads : HeadScores, optional
        Attention-head scores (``kind="heads"``).
    head_example : dict, optional
        ``{"tokens": [...], "patterns": (layer, head, T, T) array}`` of one held-out sequence.
    place : PlaceFields, optional
        Place fields (``kind="place"``).
    traces : dict, optional
        Time courses shown on recording cards.
    notes : list of str, optional
        Caveats shown with the result.

    >>> res = label_neurons(model, "blocks.5.mlp.hook_post", n_tokens=20_000)   # doctest: +SKIP
    >>> print(res.summary()); Report("labels").add(res)                          # doctest: +SKIP
    """

    title: str
    kind: str  # "neurons" | "heads" | "recording" | "place"
    site: str
    table: pd.DataFrame
    stats: UnitStatsResult | None = None
    decode: Any = None  # token id -> string
    vocab_out: VocabProjection | None = None
    vocab_in: VocabProjection | None = None
    phenomena: Phenomena | None = None
    concepts: ConceptTests | None = None
    heads: HeadScores | None = None
    head_example: dict[str, Any] | None = None
    place: PlaceFields | None = None
    traces: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """The index table (a copy)."""
        return self.table.copy()

    def summary(self) -> str:
        """How many units were labeled, how well the labels score, and the best labels."""
        t = self.table
        scored = t[t["score"].notna()] if "score" in t else t.iloc[:0]
        kind = str(t["score_kind"].dropna().iloc[0]) if "score_kind" in t and t["score_kind"].notna().any() else "score"
        lines = [f"{self.title}: {len(t)} {self.kind} labeled at {self.site}"]
        if len(scored):
            lines.append(f"  {kind}: median {scored['score'].median():.3f}, best {scored['score'].max():.3f} "
                         f"({len(scored)} scored)")
            for row in scored.sort_values("score", ascending=False).head(3).itertuples():
                lines.append(f"  {row.name}: {str(row.label)[:80]} ({row.score:.3f})")
        if "phenomena" in t:
            with_ph = int((t["phenomena"].astype(str).str.len() > 0).sum())
            lines.append(f"  {with_ph} unit(s) show a phenomenon")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Label scores per unit (histogram, coloured by phenomenon presence)."""
        import plotly.express as px

        f = self.table.assign(has_phenomenon=self.table["phenomena"].astype(str).str.len() > 0)
        fig = px.histogram(f, x="score", color="has_phenomenon", nbins=30)
        return themed(fig, title=kwargs.get("title", f"{self.title}: label scores"), height=320)

    def report_section(self, result_id: str | None = None, max_cards: int | None = None) -> list[Any]:
        """Overview figures, a sortable/filterable index and one card per unit (``max_cards``: the best-scoring
        ones only); ``result_id`` prefixes the cards' HTML ids (default: from the title).

        Parameters
        ----------
        result_id : str, optional
            Prefix of the cards' HTML ids; None: made from the title.
        max_cards : int, optional
            Cards for the best-scoring units only; None: one per unit.
        """
        from .cards import label_section

        return label_section(self, result_id=result_id, max_cards=max_cards)

    def report_head(self) -> str:
        """The CSS of the unit cards (added once to the report's ``<head>``)."""
        from .cards import CARD_CSS

        return CARD_CSS


# --------------------------------------------------------------------------- corpus and streaming
def text_corpus(tokenizer: Any, n_tokens: int = 20_000, seq_len: int = 64, text: str | None = None,
                bos: int | None = None) -> torch.Tensor:
    """Token sequences ``(n_seq, seq_len)`` from ``text`` (default: the Python documentation's topic texts
    shipped with CPython in ``pydoc_data``, ~100k tokens of English prose, available offline).

    Each row starts with ``bos`` (default: the tokenizer's BOS id, if any) and holds ``seq_len - 1`` text tokens.

    Parameters
    ----------
    tokenizer : object
        A Hugging Face style tokenizer (``encode(text, add_special_tokens=False)``, ``bos_token_id``).
    n_tokens : int, optional
        Tokens wanted (default 20 000): ``ceil(n_tokens / seq_len)`` rows, fewer when the text is too short.
    seq_len : int, optional
        Tokens per row including BOS (default 64; at least 2).
    text : str, optional
        The corpus; None: the ``pydoc_data`` topic texts. Paragraphs shorter than 20 characters are skipped.
    bos : int, optional
        The id put first in every row; None: the tokenizer's ``bos_token_id`` (no BOS when it has none).
    """
    if text is None:
        from pydoc_data.topics import topics

        text = "\n\n".join(topics[k] for k in sorted(topics))
    if not text or not text.strip():
        raise InputTypeError("the corpus is empty: give some text (or token sequences)")
    if seq_len < 2:
        raise ConfigError(f"seq_len must be at least 2, got {seq_len}")
    bos = getattr(tokenizer, "bos_token_id", None) if bos is None else bos
    body = seq_len - (1 if bos is not None else 0)
    ids: list[int] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if len(para) < 20:
            continue
        ids.extend(tokenizer.encode(para + "\n", add_special_tokens=False))
        if len(ids) >= n_tokens * body / seq_len + body:
            break
    n_seq = len(ids) // body
    if n_seq == 0:
        raise InputTypeError(f"the corpus has {len(ids)} tokens, fewer than one sequence of {body}")
    rows = torch.tensor(ids[: n_seq * body]).view(n_seq, body)
    if bos is not None:
        rows = torch.cat([torch.full((n_seq, 1), int(bos)), rows], 1)
    need = max(1, -(-n_tokens // seq_len))
    return rows[:need]


class CachedDecoder:
    """``decoder(ids) -> [str]`` that decodes each token id once (-1 -> ``""``).

    Parameters
    ----------
    tokenizer : object
        The tokenizer used by :func:`interp.label.vocab.decode_tokens`.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[int, str] = {-1: ""}

    def __call__(self, ids: Any) -> list[str]:
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            s = self._cache.get(i)
            if s is None:
                s = self._cache[i] = decode_tokens(self.tokenizer, [i])[0]
            out.append(s)
        return out


def stream_site(model: Any, tokens: torch.Tensor, site: str, batch_size: int = 8,
                progress: bool = False) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield ``(start, tokens, activations)`` batch by batch; each forward pass stops at ``site``.

    Works on a TransformerBridge (hook names) and on any ``nn.Module`` (module paths), through the
    hook engine (:func:`interp.engine.record` with ``stop=True``).

    Parameters
    ----------
    model : TransformerBridge or torch.nn.Module
        The model.
    tokens : torch.Tensor
        Non-empty token ids ``(batch, pos)``.
    site : str
        A hook name or module path (resolved by :func:`interp.engine.resolve_site`).
    batch_size : int, optional
        Sequences per forward pass (default 8).
    progress : bool, optional
        Show a progress bar over batches (default False).
    """
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise InputTypeError(f"tokens must be a non-empty (batch, pos) tensor, got shape {tuple(tokens.shape)}")
    site = engine.resolve_site(model, site)
    batches, _ = engine.batches(model, tokens, batch_size)
    if progress:
        from interp._progress import tqdm

        batches = tqdm(batches, total=-(-len(tokens) // batch_size), desc=f"streaming {site}", unit="batch")
    for batch in batches:
        acts = engine.record(model, batch.inputs, [site], stop=True).acts[site]
        yield batch.start, batch.inputs, acts.float().cpu()


def _clean(token: str) -> str:
    return token.replace("\n", "⏎").replace("\t", "⇥")


def _evidence(u: int, name: str, stats: UnitStatsResult, decode: Any, vocab_out: VocabProjection | None,
              vocab_in: VocabProjection | None, phenomena: list[str], n_ex: int = 8) -> UnitEvidence:
    left = stats.window[0]
    exemplars, windows = [], []
    for j in range(min(n_ex, stats.top_values.shape[1])):
        if stats.top_sample[u, j] < 0:
            continue
        toks = stats.top_tokens[u, j]
        strs = [_clean(s) for s in decode(toks)]
        ctx = "".join(strs[:left]) + "[" + strs[left] + "]" + "".join(strs[left + 1:])
        exemplars.append((ctx, strs[left], float(stats.top_values[u, j])))
        windows.append((strs, [float(a) for a in stats.top_window[u, j]]))
    ngrams = [("".join(decode(list(g))), c) for g, c in exemplar_ngrams(stats, u, n=2, top=3)] if left >= 1 else []
    means = stats.token_means(u, top=5)
    return UnitEvidence(
        unit=u, name=name, exemplars=exemplars, windows=windows,
        top_tokens_out=vocab_out.top_tokens[u][:5] if vocab_out is not None else [],
        top_tokens_in=vocab_in.top_tokens[u][:5] if vocab_in is not None else [],
        ngrams=ngrams, phenomena=phenomena,
        token_means=[(decode([int(t)])[0], float(m)) for t, m in zip(means["token"], means["mean"])],
    )


# --------------------------------------------------------------------------- neurons over a corpus
def label_neurons(model: Any, site: str, tokens: torch.Tensor | None = None, *, n_tokens: int = 20_000,
                  seq_len: int = 64, text: str | None = None, k: int = 12, window: tuple[int, int] = (10, 3),
                  batch_size: int = 8, holdout: float = 0.2, n_random: int = 200, units: Sequence[int] | None = None,
                  explainer: Explainer | None = None, simulate_units: int = 0, tokenizer: Any = None,
                  title: str | None = None, progress: bool = False, seed: int = 0) -> LabelResult:
    """Label every unit at ``site`` over a token corpus (one streaming pass + a held-out pass).

    Under ``torchrun`` every rank streams the corpus (the statistics are the same for every unit) and
    explains and scores its share of the units (one explainer call per unit: the costly part with a model
    explainer); the rows are gathered, and every rank returns the same result as one process.

    Parameters
    ----------
    model:
        A TransformerBridge (or ``nn.Module`` taking token ids).
    site:
        Hook name with a unit axis last, e.g. ``"blocks.5.mlp.hook_post"``.
    tokens:
        ``(n_seq, seq_len)`` token ids; default: :func:`text_corpus` with ``n_tokens`` and ``seq_len``.
    k, window:
        Exemplars per unit and their context ``(left, right)``.
    holdout:
        Fraction of sequences held out for scoring labels (detection AUROC; simulation).
    n_random:
        Random held-out tokens used as the non-activating examples of the detection score.
    units:
        Restrict the labels, cards and scores to these units (statistics cover all units).
    explainer:
        Default :class:`~interp.label.explain.TemplatedExplainer`; a failing explainer falls back to it
        and the failure is noted per unit.
    simulate_units:
        Score this many units (highest activations first) by simulation when the explainer can simulate.
    """
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokens is None:
        if tokenizer is None:
            raise InputTypeError("give tokens, or a model with a tokenizer to build the default corpus")
        tokens = text_corpus(tokenizer, n_tokens=n_tokens, seq_len=seq_len, text=text)
    tokens = torch.as_tensor(tokens)
    if tokens.ndim != 2 or tokens.numel() == 0:
        raise InputTypeError(f"the corpus is empty or not (n_seq, seq_len): shape {tuple(tokens.shape)}")
    if not 0 < holdout < 1:
        raise ConfigError(f"holdout must be between 0 and 1, got {holdout}")
    n_hold = max(1, int(round(len(tokens) * holdout)))
    if len(tokens) - n_hold < 1:
        raise InputTypeError(f"the corpus has {len(tokens)} sequence(s); need at least 2 (one is held out for scoring)")
    fit_tokens, hold_tokens = tokens[:-n_hold], tokens[-n_hold:]
    decode = CachedDecoder(tokenizer)

    stats: UnitStats | None = None
    for _, batch, acts in stream_site(model, fit_tokens, site, batch_size, progress):
        if acts.ndim != 3:
            raise InputTypeError(f"site {site!r} gives shape {tuple(acts.shape)}; label_neurons needs (batch, pos, unit)")
        if stats is None:
            stats = UnitStats(acts.shape[-1], k=k, window=window, n_positions=tokens.shape[1])
        stats.update(acts, tokens=batch)
    res = stats.result()  # type: ignore[union-attr]
    # held-out pass: top-k activating examples + random tokens (non-activating examples)
    rng = np.random.default_rng(seed)
    hold_stats = UnitStats(res.n_units, k=max(4, k // 2), window=window, n_positions=0, max_token_types=0)
    flat_pick = rng.choice(hold_tokens.numel(), size=min(n_random, hold_tokens.numel()), replace=False)
    pick_s, pick_p = flat_pick // hold_tokens.shape[1], flat_pick % hold_tokens.shape[1]
    random_acts = np.zeros((len(flat_pick), res.n_units), dtype=np.float32)
    for start, batch, acts in stream_site(model, hold_tokens, site, batch_size, False):
        hold_stats.update(acts, tokens=batch)
        sel = (pick_s >= start) & (pick_s < start + len(batch))
        random_acts[sel] = acts[pick_s[sel] - start, pick_p[sel]].numpy()
    held = hold_stats.result()

    layer = engine.layer_of(site)
    vocab_out = vocab_in = None
    notes: list[str] = [f"{res.count:,} tokens streamed for statistics, {hold_tokens.numel():,} held out for scoring"]
    if layer is not None and ".mlp." in site and hasattr(model, "W_U"):
        try:
            vocab_out = vocab_projection(model, layer, "out", k=8, tokenizer=tokenizer)
            vocab_in = vocab_projection(model, layer, "in", k=8, tokenizer=tokenizer)
        except InputTypeError as exc:
            notes.append(f"vocabulary projection skipped: {exc}")
    if vocab_out is not None and len(vocab_out.units) != res.n_units:
        vocab_out = vocab_in = None
        notes.append("vocabulary projection skipped: the site's units are not the MLP's neurons")
    phen = detect_phenomena(res, model if vocab_out is not None else None, layer, vocab=vocab_out)
    notes.extend(phen.notes.values())
    flags = phen.labels()
    explainer = explainer or TemplatedExplainer()
    fallback = TemplatedExplainer()
    chosen = np.arange(res.n_units) if units is None else np.asarray(list(units))
    if len(chosen) and (chosen.min() < 0 or chosen.max() >= res.n_units):
        raise ConfigError(f"units must be in [0, {res.n_units})")
    left = window[0]
    rand_tok = decode(hold_tokens[pick_s, pick_p].tolist())
    rows = []
    can_sim = hasattr(explainer, "simulate")
    sim_order = set(chosen[np.argsort(-res.maximum[chosen])][:simulate_units].tolist()) if can_sim else set()
    # under torchrun each rank explains and scores its share of the units; everyone gathers all rows
    for u in share(chosen.tolist()):
        name = f"L{layer}.N{u}" if layer is not None else f"N{u}"
        ev = _evidence(u, name, res, decode, vocab_out, vocab_in, flags[u])
        exp: Explanation = explain_safely(explainer, ev, fallback)
        pos_tok = decode(held.top_tokens[u, :, left].tolist())
        pos_tok = [t for t, s in zip(pos_tok, held.top_sample[u]) if s >= 0]
        score = detection_auroc(keyword_predicate(exp, pos_tok), keyword_predicate(exp, rand_tok))
        sim = float("nan")
        if u in sim_order and not exp.error:
            try:
                strs = [s for w in held.top_tokens[u, :3] for s in decode(w.tolist()) if s != ""]
                actual = [a for w, t in zip(held.top_window[u, :3], held.top_tokens[u, :3]) for a, tt in zip(w, t) if tt >= 0]
                sim = simulation_correlation(explainer.simulate(exp, strs), actual)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - simulation is optional
                notes.append(f"simulation failed for {name}: {exc}")
        rows.append({"unit": u, "name": name, "layer": layer, "label": exp.text, "score": score,
                     "score_kind": "detection AUROC", "simulation": sim, "phenomena": ", ".join(flags[u]),
                     "explainer": exp.source, "error": exp.error or "", "frequency": float(res.frequency[u]),
                     "max": float(res.maximum[u])})
    parts = gather((rows, notes))
    rows = sorted((row for part, _ in parts for row in part), key=lambda row: int(np.where(chosen == row["unit"])[0][0]))
    notes = list(dict.fromkeys(n for _, part in parts for n in part))
    table = pd.DataFrame(rows)
    failed = table["error"].astype(bool).sum()
    if failed:
        notes.append(f"the {getattr(explainer, 'name', 'chosen')} explainer failed for {failed} unit(s); templated labels "
                     f"were used instead (first error: {table.loc[table['error'].astype(bool), 'error'].iloc[0]})")
    return LabelResult(title or f"{site}", "neurons", site, table, stats=res, decode=decode, vocab_out=vocab_out,
                       vocab_in=vocab_in, phenomena=phen, notes=notes)


# --------------------------------------------------------------------------- attention heads
def label_heads(model: Any, fit_tokens: torch.Tensor, heldout_tokens: torch.Tensor, threshold: float = 0.4,
                title: str = "attention heads") -> LabelResult:
    """Label every head by its previous-token, induction and duplicate-token scores.

    Heads are flagged on ``fit_tokens`` and each label is scored by the same criterion on
    ``heldout_tokens`` (use repeated random tokens for both, e.g. ``make_repeated_tokens``).

    Parameters
    ----------
    model : TransformerBridge
        The model.
    fit_tokens : torch.Tensor
        Token ids ``(batch, pos)`` on which heads are flagged.
    heldout_tokens : torch.Tensor
        Token ids ``(batch, pos)`` on which each label is scored; its first row is the card example.
    threshold : float, optional
        Score at or above which a head is flagged (default 0.4).
    title : str, optional
        Title of the result (default ``"attention heads"``).
    """
    fit = head_scores(model, fit_tokens, threshold=threshold)
    held = head_scores(model, heldout_tokens, threshold=threshold)
    rows = []
    kinds = ("previous_token", "induction", "duplicate_token")
    for layer in range(fit.induction.shape[0]):
        for head in range(fit.induction.shape[1]):
            flagged = [k for k in kinds if getattr(fit, k)[layer, head] >= threshold]
            best = max(kinds, key=lambda k: getattr(fit, k)[layer, head])
            label = " + ".join(k.replace("_", "-") + " head" for k in flagged) or f"no clear pattern (best: {best.replace('_', '-')})"
            used = flagged[0] if flagged else best
            rows.append({"unit": layer * fit.induction.shape[1] + head, "name": f"L{layer}H{head}", "layer": layer,
                         "label": label, "score": float(getattr(held, used)[layer, head]),
                         "score_kind": f"held-out {used.replace('_', '-')} score", "simulation": float("nan"),
                         "phenomena": ", ".join(k.replace("_", "-") + " head" for k in flagged), "explainer": "head detectors",
                         "error": "", **{k: float(getattr(fit, k)[layer, head]) for k in kinds}})
    example = heldout_tokens[:1]
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(fit.induction.shape[0])]
    with torch.no_grad():
        cache = engine.record(model, example, names, stop=True).acts
    patterns = np.stack([cache[n][0].float().cpu().numpy() for n in names])  # (L, H, T, T)
    return LabelResult(title, "heads", "blocks.*.attn.hook_pattern", pd.DataFrame(rows), heads=fit,
                       head_example={"tokens": example[0].tolist(), "patterns": patterns},
                       notes=[f"heads labeled on {tuple(fit_tokens.shape)} token sequences, scored on "
                              f"{tuple(heldout_tokens.shape)} held-out sequences; threshold {threshold}"])
