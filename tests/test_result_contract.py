"""The result contract, checked for every public result class (in the manner of scikit-learn's
``check_estimator``).

Every public module of ``interp``, ``patching`` and ``probes`` is walked; a class is a result if it
subclasses :class:`interp.results.Result`, and a public class whose name ends in ``Result`` must. Each
result class has a factory below that builds a small instance from tiny synthetic data (a new result
type must come with one, or :func:`test_every_result_class_has_a_factory` fails), and each instance must:

* ``to_frame()``: a non-empty :class:`pandas.DataFrame`;
* ``plot()``: a plotly ``Figure`` in the library's theme (:func:`interp.results.themed`);
* ``summary()``: a few lines of non-empty text;
* ``_repr_html_()``: HTML holding the summary;
* ``Report("t").add(result)``: a section in a report;
* ``save(path)`` / ``load(path)``: round-trip, where the class defines them.
"""

from __future__ import annotations

import functools
import html
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from interp.results import THEME, Result, _theme_fingerprint

pytestmark = pytest.mark.usefixtures("one_thread")  # small torch ops: one thread is faster on 2 cores

PACKAGES = ("interp", "patching", "probes")


def _public_modules() -> list[Any]:
    out = []
    for name in PACKAGES:
        pkg = importlib.import_module(name)
        out.append(pkg)
        for info in pkgutil.walk_packages(pkg.__path__, name + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                out.append(importlib.import_module(info.name))
    return out


def public_classes() -> dict[str, type]:
    """``{qualified name: class}`` of every public class defined in a public module."""
    found = {}
    for module in _public_modules():
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and not name.startswith("_") and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def result_classes() -> dict[str, type]:
    return {q: c for q, c in public_classes().items() if issubclass(c, Result) and c is not Result}


# ------------------------------------------------------------------------------------- tiny inputs
@functools.cache
def bridge() -> Any:
    """A random 2-layer LN + GELU-MLP TransformerBridge (d_model 32, vocab 50): builds in a fraction of a second."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(d_model=32, n_layers=2, n_heads=4, d_head=8, n_ctx=32, d_vocab=50, attn_only=False,
                                  d_mlp=64, act_fn="gelu", normalization_type="LN", seed=0)
    return TransformerBridge.boot_native(cfg).eval()


def tokens(n: int = 4, pos: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 50, (n, pos), generator=torch.Generator().manual_seed(seed))


def _milan() -> Any:
    milan = importlib.import_module("interp.label.milan")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    images = torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return milan.describe_units(net, images, "1", milan.RetrievalDescriber(np.arange(12) % 3), k=4)


def _concept_detection() -> Any:
    scores = pd.DataFrame({"method": ["SNMF"] * 4, "component": [0] * 4, "group": ["concept", "concept", "neutral", "neutral"],
                           "sentence": [0, 1, 0, 1], "r2": [0.1, 0.2, 0.0, 0.1], "cosine": [0.5, 0.4, 0.1, 0.2],
                           "corr": [0.5, 0.4, 0.1, 0.2], "mse": [1.0, 1.1, 1.2, 1.3]})
    return importlib.import_module("interp.decompose.steering").ConceptDetection(scores)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _metric():
    from patching import metrics

    return metrics.logit_diff(torch.tensor([3, 4, 5, 6]), torch.tensor([7, 8, 9, 10]))


@functools.cache
def _paths_comparison():
    from patching.paths import compare_paths

    return compare_paths(bridge(), tokens(3, 8), torch.tensor([1, 2, 3]), position=-1, steps=2, n_random=1,
                         ops=("remove",))


@functools.cache
def _planted():
    from interp.decompose.synthetic import planted_assemblies

    return planted_assemblies(n_units=16, n_samples=500, n_assemblies=2, size=4, event_rate=0.05, seed=0)


@functools.cache
def _assemblies():
    from interp.decompose.assemblies import find_assemblies

    return find_assemblies(_planted().recording, n_permutations=10)


@functools.cache
def _unit_stats():
    from interp.label.stats import UnitStats

    stats = UnitStats(8, k=3, window=(2, 1), max_token_types=64, n_positions=12)
    stats.update(torch.randn(4, 12, 8, generator=torch.Generator().manual_seed(0)), tokens=tokens())
    return stats.result()


def _recording(n: int = 200, units: int = 6) -> Any:
    from interp import Activations

    r = rng(1)
    t = np.arange(n)
    reversal = (np.sin(t / 15) > 0.5).astype(float)
    data = np.abs(r.normal(size=(n, units))) + np.outer(reversal, np.linspace(0, 2, units))
    return Activations(torch.tensor(data), ("sample", "unit"),
                       {"sample": {"reversal": reversal, "velocity": np.cos(t / 15)},
                        "unit": {"name": [f"N{i}" for i in range(units)]}}, {"dt": 0.5})


@functools.cache
def _profile(k: int = 1):
    from interp import Activations
    from interp.similarity import RDMs, compare, rdm

    r = rng(0)
    ids = [f"s{i}" for i in range(12)]
    latent = r.normal(size=(12, 4))
    layers = {f"layer{j}": Activations(torch.as_tensor(latent @ r.normal(size=(4, 6)) * j + r.normal(size=(12, 6))),
                                       ("sample", "unit"), coords={"sample": {"id": ids}}) for j in range(3)}
    subjects = RDMs(torch.stack([rdm(latent + r.normal(size=latent.shape)) for _ in range(3)]), ids)
    return compare(layers, None, subjects, n_bootstraps=10, progress=False, model_name=f"model {k}")


@functools.cache
def _profile_rdms():
    from interp.similarity import RDMs, rdm

    r = rng(0)
    latent = r.normal(size=(8, 3))
    return RDMs(torch.stack([rdm(latent + 0.5 * r.normal(size=latent.shape)) for _ in range(3)]),
                [f"s{i}" for i in range(8)], pd.DataFrame({"subject": ["a", "b", "c"]}), "correlation")


def _study():
    from patching.study import StudyResult

    table = pd.DataFrame({"row_id": ["a", "b", "c", "d"], "kind": "intervention", "group": "grid1",
                          "intervention": "zero", "site": "blocks.0.attn.hook_z", "layer": [0, 0, 1, 1],
                          "head": [0, 1, 0, 1], "metric": [1.0, 0.5, 0.8, 0.1], "baseline": 1.2})
    table["effect"] = table["metric"] - table["baseline"]
    config = {"title": "tiny study", "model": "tiny", "metric": {"name": "logit_diff"}, "data": {"kind": "tokens"}}
    return StudyResult(table, config, 1.2)


def _activation_patching():
    from patching import activation_patching

    return activation_patching(bridge(), tokens(), tokens(seed=1), _metric(), sites="resid_pre")


class _Identity:
    """The smallest decomposition: codes are the input (for the spliced-LM metrics)."""

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _label_heads():
    from interp.label.pipeline import label_heads
    from interp.models.induction import make_repeated_tokens

    return label_heads(bridge(), make_repeated_tokens(4, 16, seed=1, d_vocab=50).tokens,
                       make_repeated_tokens(4, 16, seed=2, d_vocab=50).tokens)


def _direction_tuning():
    from interp.label.tuning import direction_tuning

    theta = rng(0).uniform(0, 2 * np.pi, 120)
    Y = np.stack([np.cos(theta - 1.0) + 0.3 * rng(1).normal(size=120), rng(2).normal(size=120)], 1)
    return direction_tuning(Y, angle=theta, n_permutations=19)


def _place_fields():
    from interp import Activations
    from interp.label.spatial import place_fields

    n = 1500
    pos = (np.sin(np.arange(n) / 80) + 1) * 100
    rate = np.stack([5 * np.exp(-((pos - 60) ** 2) / (2 * 10 ** 2)) + 0.1, np.full(n, 2.0)], 1)
    rec = Activations(torch.tensor(rng(0).poisson(rate * 0.1), dtype=torch.float32), ("sample", "unit"),
                      {"sample": {"linear_position": pos}, "unit": {"name": ["pc", "flat"]}}, {"dt": 0.1})
    return place_fields(rec, speed=None, n_permutations=20, min_shift_s=10, min_spikes=10)


def _time_recording() -> Any:
    """12 stimuli x 2 repetitions, 10 time points, 6 channels; the channels carry the stimulus codes after t=4."""
    from interp import Activations

    r = rng(3)
    codes = r.normal(size=(12, 6))
    x = r.normal(size=(24, 10, 6))
    x[:, 4:] += np.tile(codes, (2, 1))[:, None, :]
    rows = pd.DataFrame({"stimulus": [f"s{k}" for k in range(12)] * 2})
    return Activations(torch.from_numpy(x), ("sample", "time", "unit"), {"sample": rows}), codes


def _sliding_rsa():
    from interp.similarity.temporal import sliding_rsa

    rec, codes = _time_recording()
    return sliding_rsa({"codes": codes, "noise": rng(4).normal(size=(12, 6))}, rec, window=2, step=2,
                       conditions="stimulus", n_permutations=19)


def _cross_temporal_rsa():
    from interp.similarity.temporal import cross_temporal_rsa

    rec, _ = _time_recording()
    return cross_temporal_rsa(rec, window=2, step=2, conditions="stimulus")


def _brain_alignment():
    from interp.similarity import rdm
    from patching.alignment import Ablation, brain_alignment

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 5)).eval()
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    rdms = np.stack([rdm(x.double() + 0.3 * torch.randn(10, 4, dtype=torch.float64)).numpy() for _ in range(2)])
    return brain_alignment(model, x, rdms, {"first half": Ablation("1", channels=range(3))}, readout="2",
                           n_bootstraps=10, progress=False)


def _nonneg(n: int = 60, d: int = 8) -> torch.Tensor:
    return torch.rand(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _dashboards() -> Result:
    from interp import engine
    from interp.decompose import TopKSAE
    from interp.label.dashboards import feature_dashboards

    site = "blocks.0.hook_resid_post"
    acts = engine.record(bridge(), tokens(8, 12), [site]).acts[site].reshape(-1, 32)
    sae = TopKSAE(n_components=16, k=4, batch_size=32, progress=False).fit(acts)
    return feature_dashboards(bridge(), sae, tokens(8, 12), site, features=range(4), n_top=3)


#: One factory per result class (by class name): a small, real instance from tiny synthetic data.
FACTORIES: dict[str, Callable[[], Result]] = {
    # interp
    "CapturePlan": lambda: importlib.import_module("interp.capture_plan").plan_capture(
        bridge(), "blocks.0.hook_resid_post", n_tokens=48, seq_len=12),
    "Assemblies": _assemblies,
    "AssemblyMatch": lambda: importlib.import_module("interp.decompose.assemblies").match_assemblies(
        _assemblies(), _planted().members),
    "ReconstructionMetrics": lambda: importlib.import_module("interp.decompose.metrics").reconstruction_metrics(
        importlib.import_module("interp.decompose").NMF(3, max_iter=20).fit(_nonneg()), _nonneg()),
    "SplicedLMMetrics": lambda: importlib.import_module("interp.decompose.metrics").spliced_lm_metrics(
        _Identity(), bridge(), tokens(), "blocks.0.hook_resid_post"),
    "SteeringResult": lambda: importlib.import_module("interp.decompose.read").find_strength(
        bridge(), tokens(1), "blocks.0.hook_resid_post", torch.ones(32), target_kl=0.05, max_evaluations=8),
    "ConceptDetection": lambda: _concept_detection(),
    "UnitExemplars": lambda: _milan().exemplars,
    "UnitDescriptions": _milan,
    "ConvergenceScore": lambda: importlib.import_module("probes.convergence").temporal_score(
        np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), times=[0.0, 0.1, 0.2, 0.3]),
    "TokenAgreement": lambda: importlib.import_module("interp.label.vocab_agreement").top_token_agreement(
        bridge(), bridge(), layer=0),
    "SteeringEvaluation": lambda: importlib.import_module("interp.decompose.steering").SteeringEvaluation(
        pd.DataFrame({"method": ["SNMF", "SNMF", "SAE"], "component": [0, 0, 0], "target_kl": [0.1, 0.1, 0.1],
                      "strength": [5.0, 5.0, 7.0], "kl": [0.1, 0.1, 0.5], "converged": [True, True, False],
                      "sign": [1.0, -1.0, np.nan], "sentence": ["a", "b", None], "concept_score": [2, 1, np.nan],
                      "fluency_score": [1, 1, np.nan], "score": [4 / 3, 1.0, np.nan], "judged": [True, True, None]}),
        _concept_detection()),
    "BehaviourComponents": lambda: importlib.import_module("interp.decompose.recordings").behaviour_components(
        importlib.import_module("interp.decompose").NMF(2, max_iter=30).fit(_recording()), _recording(), n_top=3,
        only_identified=False, n_permutations=20),
    "ConceptTests": lambda: importlib.import_module("interp.label.concepts").concept_test(
        _recording().data.numpy(), {"reversal": _recording().coord("reversal", "sample")}, null="permutation",
        n_permutations=20),
    "Enrichment": lambda: importlib.import_module("interp.label.concepts").enrichment_test(
        ["AVAL", "AVAR", "SMDVL"], ["AVAL", "AVAR", "RIML", "SMDVL", "ASHL", "AWCL"], ["AVA", "RIM"]),
    "HeadScores": lambda: importlib.import_module("interp.label.heads").head_scores(bridge(), tokens()),
    "Phenomena": lambda: importlib.import_module("interp.label.phenomena").detect_phenomena(_unit_stats()),
    "LabelResult": _label_heads,
    "PlaceFields": _place_fields,
    "UnitStatsResult": _unit_stats,
    "TuningCurves": lambda: importlib.import_module("interp.label.tuning").tuning_curves(
        rng(0).normal(size=(80, 3)), rng(1).uniform(size=80), bins=4, n_bootstraps=20),
    "DirectionTuning": _direction_tuning,
    "FeatureDashboards": _dashboards,
    "VocabProjection": lambda: importlib.import_module("interp.label.vocab").vocab_projection(bridge(), 0, k=3),
    "InductionScores": lambda: importlib.import_module("interp.models.induction").induction_head_scores(
        bridge(), importlib.import_module("interp.models.induction").make_repeated_tokens(4, 32, seed=0, d_vocab=50)),
    "NoiseCeiling": lambda: importlib.import_module("interp.similarity").rsa_noise_ceiling(_profile_rdms()),
    "CKAResult": lambda: importlib.import_module("interp.similarity").cka_details(
        rng(0).normal(size=(20, 5)), rng(1).normal(size=(20, 4)), kernel="rbf"),
    "SimilarityProfile": _profile,
    "SimilarityProfiles": lambda: importlib.import_module("interp.similarity").SimilarityProfiles(
        [_profile(1), _profile(2)], ["trained", "random"]),
    "RDMs": _profile_rdms,
    "ProcrustesResult": lambda: importlib.import_module("interp.similarity").procrustes(
        rng(0).normal(size=(20, 5)), rng(1).normal(size=(20, 4))),
    "PermutationResult": lambda: importlib.import_module("interp.stats").permutation_test(
        lambda x, y: float(np.corrcoef(x, y)[0, 1]), rng(0).normal(size=30), rng(1).normal(size=30),
        null="permutation", n_permutations=20),
    "BootstrapResult": lambda: importlib.import_module("interp.stats").bootstrap(
        lambda x: float(np.mean(x)), rng(0).normal(size=30), n_bootstraps=20),
    "ClusterResult": lambda: importlib.import_module("interp.stats.clusters").cluster_permutation_test(
        rng(0).normal(size=(8, 20)) + np.r_[np.zeros(10), np.ones(10)], n_permutations=50),
    "TimeCourse": _sliding_rsa,
    "TimeGeneralization": _cross_temporal_rsa,
    # patching
    "AttributionResult": _activation_patching,
    "ConservationResult": lambda: importlib.import_module("patching.conservation").relevance_conservation(
        bridge(), tokens(), _metric()),
    "NeuronPaths": lambda: _paths_comparison().paths["jas"],
    "PathComparison": _paths_comparison,
    "PathSimilarity": lambda: importlib.import_module("patching.paths").path_similarity(
        _paths_comparison().paths["jas"], ["a", "a", "b"], n_permutations=20),
    "FrequencySimilarity": lambda: importlib.import_module("patching.paths").frequency_similarity(
        torch.tensor([[[1], [2]], [[1], [3]], [[4], [2]], [[4], [5]]]), ["a", "a", "b", "b"], n_permutations=10),
    "Faithfulness": lambda: importlib.import_module("patching.faithfulness").faithfulness(
        bridge(), tokens(4, 6), torch.cat([tokens(4, 6)[:, :3], tokens(4, 3, seed=1)], 1),
        _metric(), sites=["resid_pre"], methods=["atp"]),
    "StudyResult": _study,
    "AlignmentResult": _brain_alignment,
    "EdgeAttributionResult": lambda: _edge_result(),
    "Circuit": lambda: _edge_result().circuit(fraction=1.0),
    "CircuitCurve": lambda: importlib.import_module("patching.edges").CircuitCurve(
        "eap", "metric", [0.01, 0.1, 1.0], [1, 5, 50], [0.1, 0.8, 1.0], 2.0, 0.5),
    # probes
    "SplitHalfCeiling": lambda: importlib.import_module("probes").split_half_ceiling(
        rng(0).normal(size=(1, 20, 3)) + 0.5 * rng(1).normal(size=(4, 20, 3)), n_splits=3),
    "NormalizedScore": lambda: importlib.import_module("probes").normalize([0.3, 0.45], 0.6),
    "EncodingResult": lambda: importlib.import_module("probes").encoding_scores(
        rng(0).normal(size=(40, 5)), rng(0).normal(size=(40, 5))[:, :2] + rng(1).normal(size=(40, 2)),
        alphas=[1.0, 10.0], cv=3, inner_cv=3),
    "LaggedEncoding": lambda: importlib.import_module("probes").lagged_encoding(
        rng(0).normal(size=(60, 3)), rng(1).normal(size=(60, 2)), lags=range(3), alphas=[1.0, 10.0], cv=3,
        inner_cv=3),
    "VariancePartition": lambda: importlib.import_module("probes").variance_partitioning(
        {"a": rng(0).normal(size=(45, 3)), "b": rng(1).normal(size=(45, 2))},
        rng(0).normal(size=(45, 3))[:, :2] + rng(2).normal(size=(45, 2)), alphas=[1.0, 10.0], cv=3, inner_cv=3,
        n_iter=3),
    "SelectivityResult": lambda: importlib.import_module("probes").probe_selectivity(
        rng(0).normal(size=(40, 5)), (rng(0).normal(size=(40, 5))[:, 0] > 0).astype(int), cv=3),
}


def _edge_result() -> Result:
    edges = importlib.import_module("patching.edges")
    graph = edges.graph_from_cfg(2, 2, mlp=True)
    effect = torch.randn(graph.n_edges, generator=torch.Generator().manual_seed(0)).double()
    return edges.EdgeAttributionResult("eap", "metric", 1.0, 0.0, "denoise", graph, effect)


@functools.cache
def instance(name: str) -> Result:
    return FACTORIES[name]()


# -------------------------------------------------------------------------------------------- tests
def test_every_result_class_has_a_factory():
    classes = result_classes()
    assert len(classes) >= 30, sorted(classes)  # the walk is not vacuous
    missing = sorted(q for q, c in classes.items() if c.__name__ not in FACTORIES)
    assert not missing, f"result classes without a factory in {__name__}.FACTORIES: {missing}"
    unknown = sorted(set(FACTORIES) - {c.__name__ for c in classes.values()})
    assert not unknown, f"factories of classes that are no longer public results: {unknown}"


def test_public_classes_named_result_are_results():
    bad = sorted(q for q, c in public_classes().items() if q.endswith("Result") and not issubclass(c, Result))
    assert not bad, f"public classes named ...Result that do not subclass interp.results.Result: {bad}"


def test_one_name_per_result_class():
    """One idea, one name: two public result classes never share a name."""
    names = [c.__name__ for c in result_classes().values()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_result_contract(name, tmp_path):
    from interp.report.html import Report
    from interp.results import check_result

    result = instance(name)
    assert type(result).__name__ == name
    check_result(result, tmp_path)
    report = Report("t")
    sid = report.add(result)
    assert sid and f'id="{sid}"' in report.to_html()


@pytest.mark.parametrize("breakage, message", [
    ("empty_frame", "to_frame"), ("plain_plot", "theme"), ("long_summary", "lines"),
    ("bad_roundtrip", "round trip|differs"), ("not_a_result", "subclass"),
])
def test_check_result_fails_on_a_broken_result(breakage, message, tmp_path):
    """A user's own result that breaks one verb of the contract is refused by name."""
    import plotly.graph_objects as go

    from interp.results import ResultContractError, check_result, themed

    class Scores(Result):
        def __init__(self, values, broken=False):
            self.values, self.broken = list(values), broken

        def to_frame(self):
            return pd.DataFrame({"unit": range(len(self.values)), "score": self.values})

        def plot(self, **kwargs):
            fig = go.Figure(go.Bar(y=self.values))
            return fig.update_layout(template="plotly_white") if self.broken == "plain_plot" else themed(fig)

        def summary(self):
            return "\n".join(["Scores"] * (50 if self.broken == "long_summary" else 1))

        def save(self, path):
            pd.DataFrame({"v": self.values}).to_csv(path, index=False)
            return path

        @classmethod
        def load(cls, path):
            values = pd.read_csv(path)["v"].tolist()
            return cls(values[::-1] if Scores.reverse_on_load else values)

    Scores.reverse_on_load = False
    check_result(Scores([0.1, 0.9]), tmp_path)  # the intact result passes
    Scores.reverse_on_load = breakage == "bad_roundtrip"
    broken = {"empty_frame": Scores([]), "not_a_result": object()}.get(breakage, Scores([0.1, 0.9], breakage))
    with pytest.raises(ResultContractError, match=message):
        check_result(broken, tmp_path)


def test_theme_check_can_fail():
    """A plotly figure in another template does not pass the theme check."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from interp.results import themed

    plain = go.Figure(go.Bar(y=[1, 2]))
    plain.update_layout(template="plotly_white")
    themed(go.Figure())
    assert _theme_fingerprint(plain.layout.template) != _theme_fingerprint(pio.templates[THEME])


def test_jupyter_shows_the_plot_above_a_compact_summary(monkeypatch):
    """In Jupyter a patching result shows its heatmap first, then the summary with the table folded away."""
    import IPython.display
    import plotly.graph_objects as go

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    result = instance("AttributionResult")
    result._ipython_display_()
    assert isinstance(shown[0], go.Figure) and any(isinstance(t, go.Heatmap) for t in shown[0].data)
    page = shown[1].data
    assert result.summary().splitlines()[0][:40] in html.unescape(page)
    assert page.index("<details>") > page.index("<b>"), "the table must fold under the summary"
