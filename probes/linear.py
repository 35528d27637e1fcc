"""Linear and logistic probes with cross-validation and control tasks (Hewitt & Liang 2019, EMNLP,
"Designing and Interpreting Probes with Control Tasks").

A control task gives every *type* (a word type, a stimulus identity; by default every sample) a random
label drawn from the empirical label distribution, so it can only be solved by memorising types.
**Selectivity = task score - control score** under the same probe, features and folds: a high-capacity
probe that also fits the control task has low selectivity.

>>> import numpy as np
>>> from probes import probe_selectivity
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 10)); y = (X[:, 0] > 0).astype(int)
>>> res = probe_selectivity(X, y, probe="logistic")
>>> res.task_score > res.control_score
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from interp.errors import ConfigError, DimensionError, NaNError
from interp.results import Result, themed

from ._cv import as_array2d, check_y_given, group_labels, make_splits, validate_X
from .ridge import DEFAULT_ALPHAS, RidgeCV

__all__ = ["LinearProbe", "LogisticProbe", "cross_val_probe", "probe_selectivity", "control_labels",
           "SelectivityResult"]


def _numpy(x: Any, name: str) -> np.ndarray:
    return as_array2d(x, name).cpu().numpy()


class LogisticProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic-regression probe (scikit-learn ``LogisticRegression``, L2, lbfgs) on
    standardised features. ``C`` is the inverse regularisation strength.

    Parameters
    ----------
    C : float, optional
        Inverse L2 regularisation strength (default 1).
    max_iter : int, optional
        Iteration limit of the lbfgs solver (default 1000).
    standardize : bool, optional
        Z-score each feature with the training mean and standard deviation before fitting (default True);
        ``coef_`` is expressed in the original feature units either way.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000, standardize: bool = True) -> None:
        self.C = C
        self.max_iter = max_iter
        self.standardize = standardize

    def fit(self, X: Any, y: Any) -> LogisticProbe:
        """Fit the probe (on standardised features unless ``standardize=False``); returns self.

        Parameters
        ----------
        X : array-like, torch.Tensor or Activations
            Features ``(n_samples, n_features)``.
        y : array-like
            One class label per sample (1-D, at least 2 classes, no NaN).
        """
        from sklearn.linear_model import LogisticRegression

        Xn = validate_X(self, X, reset=True).cpu().numpy()
        check_y_given(self, y)
        y = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
        if y.ndim == 2 and y.shape[1] == 1:
            from sklearn.utils.validation import column_or_1d

            y = column_or_1d(y, warn=True)  # scikit-learn's DataConversionWarning for a column vector
        if y.ndim != 1:
            raise DimensionError(f"y must be one label per sample (1-D), got shape {y.shape}")
        if len(y) != len(Xn):
            raise DimensionError(f"X has {len(Xn)} samples but y has {len(y)}")
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise NaNError(f"y holds {int(np.isnan(y).sum())} NaN label(s); drop those samples")
        if len(np.unique(y)) < 2:
            raise DimensionError(f"a classifier needs at least 2 classes in y, got {np.unique(y).tolist()} "
                                 f"({len(y)} samples)")
        self.mean_ = Xn.mean(0) if self.standardize else np.zeros(Xn.shape[1])
        sd = Xn.std(0) if self.standardize else np.ones(Xn.shape[1])
        self.scale_ = np.where(sd > 0, sd, 1.0)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit((Xn - self.mean_) / self.scale_, y)
        self.classes_ = self.model_.classes_
        self.coef_ = self.model_.coef_ / self.scale_
        self.n_iter_ = self.model_.n_iter_
        return self

    def _standardized(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "model_")
        return (validate_X(self, X, reset=False).cpu().numpy() - self.mean_) / self.scale_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class of ``classes_``.

        Parameters
        ----------
        X : array-like, torch.Tensor or Activations
            Features ``(n_samples, n_features)``; returns ``(n_samples, n_classes)`` probabilities.
        """
        Z = self._standardized(X)
        return self.model_.predict_proba(Z)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample.

        Parameters
        ----------
        X : array-like, torch.Tensor or Activations
            Features ``(n_samples, n_features)``; returns one predicted label per sample.
        """
        Z = self._standardized(X)
        return self.model_.predict(Z)


class LinearProbe(RegressorMixin, BaseEstimator):
    """Linear (ridge) regression probe for continuous targets; α per target by inner CV (:class:`RidgeCV`).

    Parameters
    ----------
    alphas : sequence of float, optional
        Candidate ridge penalties (default ``logspace(-3, 7, 11)``).
    cv : int, splitter or list of (train, test) pairs, optional
        Inner cross-validation that chooses α (default 5 folds).
    """

    def __init__(self, alphas: Any = DEFAULT_ALPHAS, cv: Any = 5) -> None:
        self.alphas = alphas
        self.cv = cv

    def __sklearn_tags__(self) -> Any:
        """scikit-learn tags: several targets at once (``y`` may be 2-D)."""
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any) -> LinearProbe:
        """Fit a :class:`RidgeCV` (α per target by inner CV); returns self.

        Parameters
        ----------
        X : array-like, torch.Tensor or Activations
            Features ``(n_samples, n_features)``.
        y : array-like
            Targets, ``(n_samples,)`` or ``(n_samples, n_targets)``.
        """
        validate_X(self, X, reset=True)  # scikit-learn's checks and messages; records n_features_in_
        check_y_given(self, y)
        self.ridge_ = RidgeCV(alphas=self.alphas, cv=self.cv).fit(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the fitted ridge.

        Parameters
        ----------
        X : array-like, torch.Tensor or Activations
            Features ``(n_samples, n_features)``; returns a NumPy array, 1-D for a single target.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "ridge_")
        validate_X(self, X, reset=False)
        pred = self.ridge_.predict(X)
        pred = np.asarray(pred.cpu() if hasattr(pred, "cpu") else pred)
        return pred[:, 0] if pred.ndim == 2 and pred.shape[1] == 1 else pred


def _make_probe(probe: str | BaseEstimator, **kwargs: Any) -> BaseEstimator:
    from sklearn.base import clone

    if isinstance(probe, BaseEstimator):
        return clone(probe)
    if probe == "logistic":
        return LogisticProbe(**kwargs)
    if probe == "linear":
        return LinearProbe(**kwargs)
    raise ConfigError(f"probe must be 'logistic', 'linear' or a scikit-learn estimator, got {probe!r}")


def cross_val_probe(X: Any, y: Any, probe: str | BaseEstimator = "logistic", *, cv: Any = 5, groups: Any = None,
                    **probe_kwargs: Any) -> np.ndarray:
    """Held-out score per fold: accuracy for classifiers, R² for regressors.

    ``groups`` (one label per sample, or a sample-coordinate name of an Activations ``X``, e.g. ``"trial"``)
    keeps every group within one fold.

    Parameters
    ----------
    X : array-like, torch.Tensor or Activations
        Features ``(n_samples, n_features)``.
    y : array-like
        One label (classifier) or value (regressor) per sample.
    probe : str or sklearn estimator, optional
        ``"logistic"`` (default, :class:`LogisticProbe`), ``"linear"`` (:class:`LinearProbe`) or an estimator
        (cloned for each fold).
    cv : int, splitter or list of (train, test) pairs, optional
        Folds (default 5: unshuffled ``KFold``, ``GroupKFold`` with ``groups``).
    groups : array-like or str, optional
        Group label per sample, or a sample-coordinate name of an Activations ``X``.
    **probe_kwargs
        Passed to :class:`LogisticProbe` / :class:`LinearProbe` when ``probe`` is a name.
    """
    Xn = _numpy(X, "X")
    y = np.asarray(y)
    if len(y) != len(Xn):
        raise DimensionError(f"X has {len(Xn)} samples but y has {len(y)}")
    groups = group_labels(groups, len(Xn), X)
    scores = []
    for tr, te in make_splits(len(Xn), cv, groups):
        est = _make_probe(probe, **probe_kwargs).fit(Xn[tr], y[tr])
        scores.append(est.score(Xn[te], y[te]))
    return np.asarray(scores)


def control_labels(y: Any, types: Any = None, seed: int = 0) -> np.ndarray:
    """Control-task labels: each type gets a label drawn from the empirical distribution of ``y``
    (continuous ``y``: a value drawn from ``y``); samples of one type share it.

    Parameters
    ----------
    y : array-like
        The task labels (or values).
    types : array-like, optional
        Type of each sample (same length as ``y``); None: every sample is its own type.
    seed : int, optional
        Seed of the NumPy generator drawing the labels (default 0).
    """
    y = np.asarray(y)
    types = np.arange(len(y)) if types is None else np.asarray(types)
    if len(types) != len(y):
        raise DimensionError(f"types has {len(types)} entries for {len(y)} samples")
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(types, return_inverse=True)
    drawn = rng.choice(y, size=len(uniq), replace=True)
    return drawn[inv]


@dataclass
class SelectivityResult(Result):
    """Probe scores on the task and on its control task; ``selectivity = task - control`` (Hewitt & Liang 2019).

    ``task_folds`` / ``control_folds`` hold the per-fold scores.

    Parameters
    ----------
    task_score, control_score : float
        Mean held-out score over folds on the task and on the control task.
    selectivity : float
        ``task_score - control_score``.
    task_folds, control_folds : numpy.ndarray
        Per-fold scores.
    metric : str
        ``"accuracy"`` (classifier) or ``"R2"`` (regressor).

    >>> sel = probe_selectivity(X, y, probe="logistic")   # doctest: +SKIP
    >>> print(sel.summary())                               # doctest: +SKIP
    """

    task_score: float
    control_score: float
    selectivity: float
    task_folds: np.ndarray
    control_folds: np.ndarray
    metric: str

    def to_frame(self) -> pd.DataFrame:
        """One row: task and control score, selectivity and the metric."""
        return pd.DataFrame([{"task": self.task_score, "control": self.control_score,
                              "selectivity": self.selectivity, "metric": self.metric}])

    def summary(self) -> str:
        """Task, control and selectivity in one line, with the fold count."""
        return (f"Probe selectivity {self.selectivity:+.4f} ({self.metric}: task {self.task_score:.4f}, control task "
                f"{self.control_score:.4f}, {len(self.task_folds)} folds)")

    def plot(self, **kwargs: Any) -> Any:
        """Task, control and selectivity as bars (plotly)."""
        import plotly.graph_objects as go

        fig = go.Figure(go.Bar(x=["task", "control", "selectivity"],
                               y=[self.task_score, self.control_score, self.selectivity]))
        return themed(fig, title=kwargs.get("title", "Probe selectivity (Hewitt & Liang 2019)"), yaxis_title=self.metric)


def probe_selectivity(X: Any, y: Any, *, probe: str | BaseEstimator = "logistic", types: Any = None, cv: Any = 5,
                      groups: Any = None, seed: int = 0, **probe_kwargs: Any) -> SelectivityResult:
    """Cross-validated probe score on ``y`` and on a control task built from ``types``; selectivity is
    their difference (accuracy for classifiers, R² for regressors).

    Parameters
    ----------
    X : array-like, torch.Tensor or Activations
        Features ``(n_samples, n_features)``.
    y : array-like
        Task labels or values, one per sample.
    probe : str or sklearn estimator, optional
        ``"logistic"`` (default), ``"linear"`` or an estimator.
    types : array-like, optional
        Type of each sample for the control task; None: every sample is its own type.
    cv : int, splitter or list of (train, test) pairs, optional
        Folds, shared by task and control (default 5).
    groups : array-like or str, optional
        Group label per sample or a sample-coordinate name.
    seed : int, optional
        Seed of the control labels (default 0).
    **probe_kwargs
        Passed to the named probe's constructor.
    """
    task = cross_val_probe(X, y, probe, cv=cv, groups=groups, **probe_kwargs)
    control = cross_val_probe(X, control_labels(y, types, seed), probe, cv=cv, groups=groups, **probe_kwargs)
    est = _make_probe(probe, **probe_kwargs)
    metric = "accuracy" if isinstance(est, ClassifierMixin) else "R2"
    return SelectivityResult(float(task.mean()), float(control.mean()), float(task.mean() - control.mean()),
                             task, control, metric)
