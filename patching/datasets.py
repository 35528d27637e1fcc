"""Clean/corrupted prompt pairs for patching experiments.

* :func:`ioi_pairs`: indirect-object identification prompts from templates (Wang et al. 2022).
  The corrupted prompt repeats the *other* name as the subject, so the right and wrong answers
  swap (the pairing of the TransformerLens IOI demo, which RelP's code uses).
* :func:`induction_pairs`: repeated random-token sequences for ``induction-2l``; the corrupted
  sequence changes the token after the query's earlier occurrence, so induction predicts a
  different token.

Both return :class:`PromptPairs` groups of equal token length with the answer tokens, and a
:meth:`PromptPairs.metric` (logit difference of the clean answer over the corrupted answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from interp.errors import ConfigError, DataNotFoundError

from . import metrics

__all__ = ["PromptPairs", "ioi_pairs", "induction_pairs", "IOI_TEMPLATES", "NAMES"]

IOI_TEMPLATES = (
    "When{A} and{B} went to the store,{S} gave a drink to",
    "When{A} and{B} went to the park,{S} handed a ball to",
    "After{A} and{B} arrived at the office,{S} sent a letter to",
    "While{A} and{B} were working at the school,{S} gave a book to",
    "Then,{A} and{B} had a long argument, and afterwards{S} said to",
)
NAMES = (" Mary", " John", " Tom", " James", " Sarah", " Anna", " David", " Paul", " Emma", " Mark", " Lisa",
         " Kate", " Peter", " Alice", " Jack", " Laura", " Michael", " Susan", " Robert", " Linda", " Daniel",
         " Chris", " Emily", " Rachel", " Steve", " Helen", " George", " Sam", " Jane", " Mike")


@dataclass
class PromptPairs:
    """One group of clean/corrupted pairs of equal token length.

    Parameters
    ----------
    clean, corrupted : torch.Tensor
        Token ids ``[n, pos]``, of equal shape.
    correct, incorrect : torch.Tensor
        ``[n]`` token ids: the clean answer and the corrupted run's answer, predicted at the last position.
    template : str
        A description of how the pairs were made (the IOI template, the induction settings).
    texts : list of str, optional
        The clean prompts as text (IOI).
    """

    clean: torch.Tensor
    corrupted: torch.Tensor
    correct: torch.Tensor
    incorrect: torch.Tensor
    template: str = ""
    texts: list[str] | None = None

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def metric(self) -> metrics.Metric:
        """Logit difference (clean answer - corrupted answer) at the last position, batch mean."""
        return metrics.logit_diff(self.correct, self.incorrect)

    def first_difference(self) -> int:
        """First position where clean and corrupted tokens differ."""
        differs = (self.clean != self.corrupted).any(0).nonzero()
        return int(differs[0]) if len(differs) else int(self.clean.shape[1])


def _single_token_names(tokenizer: Any) -> list[tuple[str, int]]:
    out = []
    for name in NAMES:
        ids = tokenizer.encode(name, add_special_tokens=False)
        if len(ids) == 1:
            out.append((name, int(ids[0])))
    return out


def ioi_pairs(model: Any, n: int = 60, seed: int = 0, templates: tuple[str, ...] = IOI_TEMPLATES[:3]) -> list[PromptPairs]:
    """``n`` IOI pairs spread over ``templates`` (one :class:`PromptPairs` per template).

    Clean: "When Mary and John went to the store, John gave a drink to" (answer " Mary");
    corrupted: "... , Mary gave a drink to" (answer " John").

    Parameters
    ----------
    model : TransformerBridge
        A model with a ``tokenizer`` and ``to_tokens``; only names that are one token for it are used.
    n : int
        Number of pairs in all, shared out over the templates.
    seed : int
        Seed of the names drawn.
    templates : tuple of str
        Templates with ``{A}``, ``{B}`` and ``{S}`` fields (default the first three of ``IOI_TEMPLATES``).

    Returns
    -------
    list of PromptPairs
        One group per template (each of equal token length within).
    """
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise DataNotFoundError("IOI prompts need a model with a tokenizer (a TransformerBridge from the zoo)")
    names = _single_token_names(tokenizer)
    if len(names) < 4:
        raise ConfigError("fewer than 4 of the IOI names are single tokens for this tokenizer")
    gen = torch.Generator().manual_seed(seed)
    groups = []
    per = [n // len(templates) + (1 if i < n % len(templates) else 0) for i in range(len(templates))]
    for template, count in zip(templates, per):
        clean_texts, corrupted_texts, correct, incorrect = [], [], [], []
        for _ in range(count):
            i, j = torch.randperm(len(names), generator=gen)[:2].tolist()
            (a, a_id), (b, b_id) = names[i], names[j]
            clean_texts.append(template.format(A=a, B=b, S=b))
            corrupted_texts.append(template.format(A=a, B=b, S=a))
            correct.append(a_id)
            incorrect.append(b_id)
        clean = torch.stack([model.to_tokens(t)[0] for t in clean_texts])
        corrupted = torch.stack([model.to_tokens(t)[0] for t in corrupted_texts])
        groups.append(PromptPairs(clean.cpu(), corrupted.cpu(), torch.tensor(correct), torch.tensor(incorrect),
                                  template, clean_texts))
    return groups


def induction_pairs(n: int = 64, period: int = 12, query: int = 8, d_vocab: int = 128, seed: int = 0,
                    bos: int = 0, corrupt: str = "value") -> PromptPairs:
    """Repeated-token pairs: ``[BOS] + A + A[:query]``; the model should predict ``A[query]`` next.

    ``corrupt="value"``: the corrupted sequence replaces ``A[query]`` in the first copy by another
    token ``b``, so an induction circuit predicts ``b`` instead (metric: logit A[query] - logit b).
    ``corrupt="key"``: it replaces ``A[query - 1]`` in the first copy, so the current token has no
    earlier occurrence to attend from (this is what a previous-token head feeds the induction
    head). Length ``1 + period + query``.

    Parameters
    ----------
    n : int
        Number of pairs.
    period : int
        Length of the random block ``A`` (distinct tokens; ``query < period < d_vocab - 1``).
    query : int
        How many tokens of ``A`` are repeated (``1 <= query < period``); ``A[query]`` is the answer.
    d_vocab : int
        Vocabulary size; tokens are drawn from ``1 .. d_vocab - 1``.
    seed : int
        Seed of the random blocks.
    bos : int
        The token id put first.
    corrupt : {"value", "key"}
        ``"value"``: the corrupted sequence replaces ``A[query]`` in the first copy (the predicted token changes);
        ``"key"``: it replaces ``A[query - 1]`` (the current token has no earlier occurrence).

    Returns
    -------
    PromptPairs
        Tokens ``[n, 1 + period + query]``.
    """
    if corrupt not in {"value", "key"}:
        raise ConfigError(f"corrupt must be 'value' or 'key', got {corrupt!r}")
    if not 1 <= query < period or period >= d_vocab - 1:
        raise ConfigError(f"need 1 <= query < period < d_vocab - 1, got query={query}, period={period}")
    gen = torch.Generator().manual_seed(seed)
    clean, corrupted, correct, incorrect = [], [], [], []
    for _ in range(n):
        perm = torch.randperm(d_vocab - 1, generator=gen)[: period + 1] + 1
        block, other = perm[:period], int(perm[period])
        row = torch.cat([torch.tensor([bos]), block, block[:query]])
        bad = row.clone()
        bad[1 + query if corrupt == "value" else query] = other
        clean.append(row)
        corrupted.append(bad)
        correct.append(int(block[query]))
        incorrect.append(other)
    return PromptPairs(torch.stack(clean), torch.stack(corrupted), torch.tensor(correct), torch.tensor(incorrect),
                       f"induction period={period} query={query} corrupt={corrupt}")
