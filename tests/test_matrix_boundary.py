"""The one matrix boundary (``interp._matrix.as_matrix``): one input gives one matrix whatever its container,
1-D input is handled as the caller declares, and the analyses' converters are that boundary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from interp._matrix import as_matrix
from interp.errors import ConfigError, DimensionError, InputTypeError, NaNError
from interp.tensor import Activations


def _containers(a: np.ndarray) -> dict:
    out = {"ndarray": a, "tensor": torch.from_numpy(a), "list": a.tolist()}
    if a.ndim <= 2:
        out["DataFrame" if a.ndim == 2 else "Series"] = pd.DataFrame(a) if a.ndim == 2 else pd.Series(a)
    return out


@pytest.mark.parametrize("shape", [(7,), (7, 1), (5, 3), (1, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_every_container_gives_the_same_matrix(shape, dtype):
    a = np.random.default_rng(0).normal(size=shape).astype(dtype) * (10 if dtype == np.int64 else 1)
    expected = torch.from_numpy(a.reshape(a.shape[0], -1).astype(a.dtype if dtype != np.int64 else np.float64))
    for name, x in _containers(a).items():
        got = as_matrix(x)
        assert got.shape == expected.shape, name
        assert got.dtype == (torch.float64 if name == "list" else expected.dtype), name  # a list has no dtype
        assert torch.equal(got.double(), expected.double()), name


@pytest.mark.parametrize("name", ["ndarray", "tensor", "list", "Series"])
def test_one_d_refused_alike_in_every_container(name):
    x = _containers(np.arange(6.0))[name]
    with pytest.raises(DimensionError, match="1-D"):
        as_matrix(x, one_d="refuse")


def test_activations_columns_are_declared():
    data = torch.randn(4, 3, 5)
    acts = Activations(data, dims=("sample", "pos", "unit"))
    assert torch.equal(as_matrix(acts, features="rest"), data.reshape(4, 15))
    assert torch.equal(as_matrix(acts, features="unit"), data.reshape(12, 5))
    moved = Activations(data.permute(2, 0, 1), dims=("unit", "sample", "pos"))
    assert torch.equal(as_matrix(moved, features="unit"), data.reshape(12, 5))
    with pytest.raises(DimensionError, match="'unit'"):
        as_matrix(Activations(data, dims=("sample", "pos", "channel")), features="unit")


def test_bad_inputs_are_named():
    with pytest.raises(NaNError, match="1 NaN/inf values in 1 of 2"):
        as_matrix(np.array([[1.0, np.nan], [2.0, 3.0]]))
    assert as_matrix(np.array([[1.0, np.nan], [2.0, 3.0]]), nan_policy="drop").shape == (2, 1)
    for empty in (np.zeros((0, 3)), torch.zeros(4, 0)):
        with pytest.raises(DimensionError, match=r"Found array with 0 (sample|feature)\(s\)"):
            as_matrix(empty)
    with pytest.raises(InputTypeError):
        as_matrix({"blocks.0": np.zeros((2, 2))})
    with pytest.raises(InputTypeError):
        as_matrix(np.array([["a", "b"]]))
    with pytest.raises(InputTypeError):
        as_matrix(torch.zeros(2, 2, dtype=torch.complex64))
    with pytest.raises(ConfigError):
        as_matrix(np.zeros((2, 2)), one_d="row")
    with pytest.raises(DimensionError, match="shape"):
        as_matrix(torch.zeros(2, 2, 2))


def test_probe_converters_are_the_boundary():
    from probes._cv import as_array2d, validate_X
    from probes.ridge import RidgeCV

    a = np.random.default_rng(1).normal(size=(9, 3))
    for x in _containers(a).values():
        assert torch.equal(as_array2d(x, "X"), as_matrix(x))
    # an estimator's X is 2-D whatever the container: 1-D tensors are refused as 1-D arrays are
    for x in (np.arange(9.0), torch.arange(9.0)):
        with pytest.raises(DimensionError):
            validate_X(RidgeCV(), x, reset=True)


def test_analysis_converters_are_the_boundary():
    """Similarity, decompositions and concept tests read one input as the boundary does, each with the columns
    and 1-D rule it declares (stimuli as rows for similarity; units as features, 1-D refused, for estimators)."""
    from interp.decompose._data import as_matrix as decompose_matrix
    from interp.label.concepts import _matrix as concept_matrix
    from interp.similarity._backend import as_matrix as similarity_matrix

    data = torch.randn(6, 2, 3, dtype=torch.float64)
    acts = Activations(data, dims=("sample", "pos", "unit"))
    assert torch.equal(similarity_matrix(acts, device="cpu"), as_matrix(acts, features="rest"))
    assert torch.equal(decompose_matrix(acts, dtype=torch.float64), as_matrix(acts, features="unit"))
    a = np.random.default_rng(2).normal(size=(8, 3))
    for x in _containers(a).values():
        assert torch.equal(similarity_matrix(x, device="cpu"), as_matrix(x))
        assert torch.equal(decompose_matrix(x, dtype=torch.float64), as_matrix(x, dtype=torch.float64))
        assert np.array_equal(concept_matrix(x)[0], as_matrix(x).numpy())
    one_d = np.arange(5.0)
    assert similarity_matrix(one_d, device="cpu").shape == (5, 1)
    assert concept_matrix(one_d)[0].shape == (5, 1)
    with pytest.raises(DimensionError, match="Reshape your data"):
        decompose_matrix(one_d)


def test_concept_tests_find_the_units_wherever_they_stand():
    """A recording handed over unit-first is transposed, not read with units as samples; one whose unit dim has
    another name keeps its second dim as the units, with that dim's coordinates."""
    from interp.label.concepts import _matrix as concept_matrix

    data = torch.randn(7, 3, dtype=torch.float64)
    X, units = concept_matrix(Activations(data.T.contiguous(), dims=("unit", "sample")))
    assert np.array_equal(X, data.numpy()) and len(units) == 3
    X, units = concept_matrix(Activations(data, dims=("time", "neuron")))
    assert np.array_equal(X, data.numpy()) and len(units) == 3
