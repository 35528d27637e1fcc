"""One vocabulary: every public signature of ``interp``, ``patching`` and ``probes`` uses the spellings of
CONTRIBUTING.md's table ("One vocabulary"); a new spelling of an old idea fails here.

The walk covers every public module (no ``_`` in its dotted path), the names it exports (``__all__``, else
the public names it defines), every public function, every public class's ``__init__`` and its public
methods (``fit``, ``transform``, ``plot`` ...), classmethods and staticmethods included.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

PACKAGES = ("interp", "patching", "probes")

#: Banned parameter spelling -> the vocabulary's spelling (CONTRIBUTING.md).
BANNED = {
    "n_perm": "n_permutations", "n_perms": "n_permutations", "nperm": "n_permutations",
    "n_shuffle": "n_permutations", "n_shuffles": "n_permutations", "n_shifts": "n_permutations",
    "n_null": "n_permutations", "n_resamples": "n_permutations or n_bootstraps",
    "n_boot": "n_bootstraps", "n_bootstrap": "n_bootstraps", "nboot": "n_bootstraps",
    "random_state": "seed", "rng_seed": "seed", "random_seed": "seed", "rng": "seed",
    "verbose": "progress", "show_progress": "progress", "tqdm": "progress", "progress_bar": "progress",
    "bs": "batch_size", "batchsize": "batch_size",
    "dev": "device", "cuda": "device",
    "normalise": "normalize", "normalised": "normalized", "normalisation": "normalization",
    "significance": "alpha", "sig_level": "alpha",
    "trials": "groups", "group": "groups",
    "layers_to": "sites", "hook_names": "sites",
}

#: Spellings that are banned in one meaning only; the rule says when the parameter means the banned idea.
#: ``site``: the vocabulary's ``sites`` where several sites are accepted (a sequence in the annotation);
#: ``level``: the significance level is ``alpha`` (a confidence level, 0.95, stays ``level``);
#: ``shuffle``: a number of shuffles is ``n_permutations`` (a bool "shuffle the rows" is fine);
#: ``hooks``: sites are ``sites`` (a list of :class:`interp.engine.Hook` objects is fine);
#: ``blocks``: whole groups to resample are ``groups`` (a model's transformer blocks are fine).
SEQUENCE = re.compile(r"\b(Sequence|list|tuple|Iterable|Collection)\b")


def _one_meaning(name: str, param: inspect.Parameter, qualname: str) -> str | None:
    annotation = param.annotation if isinstance(param.annotation, str) else repr(param.annotation)
    if name == "site" and SEQUENCE.search(annotation):
        return "sites (site= takes one site; several are sites=)"
    if name == "level" and isinstance(param.default, float) and param.default < 0.5:
        return "alpha (the significance level)"
    if name == "shuffle" and "bool" not in annotation:
        return "n_permutations"
    if name == "hooks" and "Hook" not in annotation:
        return "sites"
    if name == "blocks" and not qualname.startswith("interp.engine."):
        return "groups"
    return None


#: Public names (functions, classes, methods) must not carry a British spelling of the table either.
BANNED_NAME_PARTS = {"normalise": "normalize", "normalised": "normalized", "normalisation": "normalization",
                     "verbose": "progress"}


def _public_modules() -> Iterator[Any]:
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        yield pkg
        for info in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
            if any(part.startswith("_") for part in info.name.split(".")):
                continue
            yield importlib.import_module(info.name)


def _ours(obj: Any) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] in PACKAGES


def public_callables() -> Iterator[tuple[str, Any]]:
    """``(qualified name, callable)`` of every public function, class and public method, each once."""
    seen: set[int] = set()
    for module in _public_modules():
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n, v in vars(module).items() if not n.startswith("_")
                     and getattr(v, "__module__", None) == module.__name__]
        for name in names:
            obj = getattr(module, name, None)
            if obj is None or id(obj) in seen or not _ours(obj) or not callable(obj):
                continue
            seen.add(id(obj))
            qual = f"{obj.__module__}.{getattr(obj, '__qualname__', name)}"
            yield qual, obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    if isinstance(value, (staticmethod, classmethod)):
                        value = value.__func__
                    if isinstance(value, property):
                        continue
                    if inspect.isfunction(value) and id(value) not in seen:
                        seen.add(id(value))
                        yield f"{qual}.{attr}", value


def _parameters(obj: Any) -> list[tuple[str, inspect.Parameter]]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return list(sig.parameters.items())


def _name_parts(name: str) -> list[str]:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return [p for p in snake.split("_") if p]


def test_the_walk_sees_the_whole_public_api():
    """The walk is not vacuous: it reaches estimators' fit, results' plot and the attribution methods."""
    quals = {q for q, _ in public_callables()}
    for expected in ("interp.decompose.sae.TopKSAE.__init__", "interp.decompose._sae_base.SparseAutoencoder.fit",
                     "patching.activation_patching.activation_patching", "probes.ridge.RidgeCV.fit",
                     "interp.similarity.compare.compare", "interp.results.Result.plot"):
        assert expected in quals, expected
    assert len(quals) > 400


def violations(qual: str, obj: Any) -> list[str]:
    """The banned spellings in ``obj``'s signature, each with the vocabulary's spelling."""
    out = []
    for name, param in _parameters(obj):
        want = BANNED.get(name) or _one_meaning(name, param, qual)
        if want:
            out.append(f"{qual}({name}=...): use {want}")
    return out


def test_public_signatures_use_the_vocabulary():
    bad = [v for qual, obj in public_callables() for v in violations(qual, obj)]
    assert not bad, "spellings outside CONTRIBUTING.md's vocabulary:\n" + "\n".join(sorted(set(bad)))


def test_public_names_use_the_vocabulary():
    bad = []
    for qual, _ in public_callables():
        name = qual.rsplit(".", 1)[-1]
        for part in _name_parts(name):
            if part in BANNED_NAME_PARTS:
                bad.append(f"{qual}: {part} -> {BANNED_NAME_PARTS[part]}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_a_banned_spelling_fails():
    def permutation_test(x, y, n_perm: int = 100, random_state: int = 0, verbose: bool = False,
                         site: Sequence[str] = ()) -> None:
        """A signature written before the vocabulary."""

    found = violations("interp.x.permutation_test", permutation_test)
    assert len(found) == 4 and "n_permutations" in found[0] and "seed" in found[1] and "progress" in found[2]
    assert violations("interp.x.ok", lambda x, n_permutations=100, seed=0, progress=False, site="a": None) == []


@pytest.mark.parametrize("name, parameter, expected", [
    ("f", inspect.Parameter("site", inspect.Parameter.KEYWORD_ONLY, annotation="str | Sequence[str]"), True),
    ("f", inspect.Parameter("site", inspect.Parameter.KEYWORD_ONLY, annotation="str"), False),
    ("f", inspect.Parameter("level", inspect.Parameter.KEYWORD_ONLY, default=0.05), True),
    ("f", inspect.Parameter("level", inspect.Parameter.KEYWORD_ONLY, default=0.95), False),
    ("f", inspect.Parameter("shuffle", inspect.Parameter.KEYWORD_ONLY, annotation="int"), True),
    ("f", inspect.Parameter("shuffle", inspect.Parameter.KEYWORD_ONLY, annotation="bool"), False),
])
def test_the_one_meaning_rules_can_fail(name, parameter, expected):
    """The rules for words with two meanings flag the banned meaning and only that one."""
    assert (_one_meaning(parameter.name, parameter, f"interp.x.{name}") is not None) == expected
