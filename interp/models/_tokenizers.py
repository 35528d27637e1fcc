"""Small in-memory tokenizers for the locally trained zoo models (nothing is read from disk or the Hub).

:func:`integer_tokenizer` builds the tokenizer of ``induction-2l``: a real Hugging Face
``PreTrainedTokenizerFast`` (so ``TransformerBridge.to_tokens``, ``to_string``, ``generate`` and
:func:`interp.capture` with texts all work) whose words are the token ids themselves.

* Text form: whitespace-separated decimal ids, e.g. ``"17 5 99 17 5"``; id ``0`` is written ``<bos>``.
* ``tok("17 5 99")["input_ids"] == [0, 17, 5, 99]`` (BOS is prepended, like the bridge expects);
  ``tok.decode([0, 17, 5]) == "<bos> 17 5"``; ``tok.encode("3 4", add_special_tokens=False) == [3, 4]``.
* ``<bos>`` (id 0) is also the padding token (padded positions are masked by ``attention_mask``).
* A word that is not an id in ``1..vocab_size-1`` (or ``<bos>``) raises :class:`~interp.errors.ConfigError`.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, require

BOS_TOKEN = "<bos>"


def _check_words(text: Any, vocab: dict[str, int]) -> None:
    """Raise ConfigError if a string (or list of strings) holds words outside the vocabulary."""
    texts = [text] if isinstance(text, str) else text if isinstance(text, (list, tuple)) else []
    for item in texts:
        if not isinstance(item, str):
            continue  # pre-tokenized input or ids: the backend checks those
        bad = [word for word in item.split() if word not in vocab]
        if bad:
            raise ConfigError(
                f"the integer tokenizer only knows whitespace-separated ids 1..{len(vocab) - 1} and {BOS_TOKEN!r}; "
                f"got {bad[:5]!r} in {item[:60]!r}"
            )


def integer_tokenizer(vocab_size: int = 128, model_max_length: int = 64, name: str = "induction-2l") -> Any:
    """A Hugging Face fast tokenizer whose words are the integer token ids (id 0 is ``<bos>``).

    >>> tok = integer_tokenizer()
    >>> tok("17 5 99")["input_ids"]
    [0, 17, 5, 99]
    >>> tok.decode([0, 17, 5])
    '<bos> 17 5'
    """
    tokenizers = require("tokenizers")
    transformers = require("transformers")

    vocab = {BOS_TOKEN: 0, **{str(i): i for i in range(1, vocab_size)}}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token=BOS_TOKEN))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    backend.post_processor = tokenizers.processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, 0)]
    )
    backend.decoder = tokenizers.decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces

    class IntegerTokenizer(transformers.PreTrainedTokenizerFast):
        """Words are token ids; see :mod:`interp.models._tokenizers`. Unknown words raise ConfigError."""

        def __call__(self, text: Any = None, *args: Any, **kwargs: Any) -> Any:
            _check_words(text, vocab)
            if args and isinstance(args[0], (str, list, tuple)):
                _check_words(args[0], vocab)
            return super().__call__(text, *args, **kwargs)

        def encode(self, text: Any, *args: Any, **kwargs: Any) -> list[int]:
            _check_words(text, vocab)
            return super().encode(text, *args, **kwargs)

    return IntegerTokenizer(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=BOS_TOKEN,
        pad_token=BOS_TOKEN,
        unk_token=BOS_TOKEN,
        add_bos_token=True,
        padding_side="right",
        model_max_length=model_max_length,
        name_or_path=name,
    )
