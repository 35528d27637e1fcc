"""Neuron labeling: streaming unit statistics, phenomenon detectors, label sources, tuning, explainers, scoring, reports.

>>> from interp.label import label_neurons, build_label_report                     # doctest: +SKIP
>>> res = label_neurons(model, "blocks.6.mlp.hook_post", n_tokens=20_000)          # doctest: +SKIP
>>> build_label_report(res, "labels.html")                                          # doctest: +SKIP
"""

from .concepts import concept_test, enrichment_test, pooled_concept_test
from .dashboards import FeatureDashboards, feature_dashboards
from .explain import Explainer, LocalModelExplainer, OpenAIExplainer, TemplatedExplainer
from .heads import head_scores
from .phenomena import detect_phenomena, universal_units
from .pipeline import LabelResult, label_heads, label_neurons
from .recordings import label_place_cells, label_recordings, recording_title
from .report import build_label_report
from .selectivity import category_selectivity
from .spatial import place_fields
from .stats import UnitStats
from .tuning import DirectionTuning, TuningCurves, direction_tuning, tuning_curves
from .vocab import logit_lens, vocab_projection
from .vocab_agreement import TokenAgreement, top_token_agreement

__all__ = [
    "UnitStats", "detect_phenomena", "universal_units", "head_scores", "vocab_projection", "logit_lens", "concept_test",
    "pooled_concept_test", "enrichment_test", "category_selectivity", "place_fields", "Explainer",
    "TemplatedExplainer", "LocalModelExplainer", "OpenAIExplainer", "LabelResult", "label_neurons", "label_heads",
    "label_recordings", "label_place_cells", "build_label_report", "recording_title",
    "tuning_curves", "direction_tuning", "TuningCurves", "DirectionTuning", "feature_dashboards", "FeatureDashboards",
    "top_token_agreement", "TokenAgreement",
]
