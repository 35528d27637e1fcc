"""Language-model inputs for path search: factual prompts and their answer tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from interp.errors import ConfigError, DimensionError

__all__ = ["FACTUAL_PROMPTS", "lm_inputs"]


FACTUAL_PROMPTS: list[tuple[str, str]] = [
    ("The capital of France is", " Paris"), ("The capital of Germany is", " Berlin"),
    ("The capital of Italy is", " Rome"), ("The capital of Spain is", " Madrid"),
    ("The capital of Japan is", " Tokyo"), ("The capital of Russia is", " Moscow"),
    ("The capital of England is", " London"), ("The capital of Egypt is", " Cairo"),
    ("The capital of Greece is", " Athens"), ("The capital of China is", " Beijing"),
    ("The capital of Canada is", " Ottawa"), ("The capital of Austria is", " Vienna"),
    ("The capital of Portugal is", " Lisbon"), ("The capital of Ireland is", " Dublin"),
    ("The capital of Norway is", " Oslo"), ("The Eiffel Tower is located in the city of", " Paris"),
    ("The Colosseum is located in the city of", " Rome"), ("The largest planet in the solar system is", " Jupiter"),
    ("Water is made of hydrogen and", " oxygen"), ("The chemical symbol for gold is", " Au"),
    ("The first president of the United States was George", " Washington"),
    ("The author of Romeo and Juliet is William", " Shakespeare"), ("The Great Wall is located in", " China"),
    ("The currency of Japan is the", " yen"), ("The opposite of hot is", " cold"),
    ("Monday, Tuesday,", " Wednesday"), ("The Statue of Liberty is in New", " York"),
    ("Albert Einstein developed the theory of", " relativity"),
]


def lm_inputs(model: Any, tokenizer: Any, prompts: Sequence[str], answers: Sequence[str]
              ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Token ids of each prompt (one tensor per prompt, BOS prepended by ``model.to_tokens`` when the
    model has it) and the target token of each answer (its first token).

    Parameters
    ----------
    model : Any
        A ``TransformerBridge`` (its ``to_tokens`` is used) or any model.
    tokenizer : Any
        A Hugging Face tokenizer (used for the answers, and for the prompts without ``to_tokens``).
    prompts : Sequence[str]
        The prompts.
    answers : Sequence[str]
        One answer per prompt; its first token is the target.

    Returns
    -------
    tokens, targets : list of torch.Tensor, torch.Tensor
        One 1-D token tensor per prompt, and the ``(n,)`` target token ids.
    """
    if len(prompts) != len(answers):
        raise DimensionError(f"{len(prompts)} prompts but {len(answers)} answers")
    if hasattr(model, "to_tokens"):
        tokens = [model.to_tokens(p)[0] for p in prompts]
    else:
        tokens = [torch.tensor(tokenizer(p)["input_ids"]) for p in prompts]
    targets = []
    for a in answers:
        ids = tokenizer(a, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"answer {a!r} has no tokens")
        targets.append(ids[0])
    return tokens, torch.tensor(targets)
