"""The 92 object images of Kriegeskorte et al. (2008) with monkey IT, human IT, model and behaviour RDMs.

Kriegeskorte N, Mur M, Ruff DA, Kiani R, Bodurka J, Esteky H, Tanaka K, Bandettini PA (2008). Matching
categorical object representations in inferior temporal cortex of man and monkey. Neuron 60(6):1126-1141.
The monkey IT data are from Kiani R, Esteky H, Mirpour K, Tanaka K (2007), J Neurophysiol 97:4296-4309.
Files: the rsatoolbox demo data (MIT licence), vendored in ``interp/data/bundled/kriegeskorte92``.

Example
-------
>>> from interp.data import load
>>> k92 = load("kriegeskorte92")
>>> k92.images.shape, k92.images.dtype
((92, 175, 175, 3), dtype('uint8'))
>>> k92.rdm("monkey_IT").shape
(92, 92)
>>> k92.stimuli.groupby("category4").size().to_dict()
{'artificial': 21, 'body': 24, 'face': 24, 'natural': 23}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, SchemaError, closest
from ..results import themed
from ..tensor import Activations
from ._common import data_root, require_file

__all__ = ["Kriegeskorte92", "load_kriegeskorte92"]

CITATION = (
    "Kriegeskorte N, Mur M, Ruff DA, Kiani R, Bodurka J, Esteky H, Tanaka K, Bandettini PA (2008). "
    "Matching categorical object representations in inferior temporal cortex of man and monkey. "
    "Neuron 60(6):1126-1141. doi:10.1016/j.neuron.2008.10.043; monkey IT: Kiani R et al. (2007) "
    "J Neurophysiol 97:4296-4309; files: rsatoolbox demos/92imageData (MIT)."
)

_FILES = {
    "supplement": "Kriegeskorte_Neuron2008_supplementalData.mat",
    "brain": "92_brainRDMs.mat",
    "behaviour": "92_behavRDMs.mat",
    "models": "92_modelRDMs.mat",
}

# columns of ``categoryVectors`` in the supplementary file, renamed
_CATEGORY_VECTORS = {
    "animate": "animate", "inanim": "inanimate", "human": "human", "nonhumani": "nonhuman", "body": "body",
    "face": "face", "natObj": "natural_object", "artiObj": "artificial_object", "monkeyape": "monkey_ape",
}


@dataclass
class Kriegeskorte92:
    """The 92-image stimulus set and its representational dissimilarity matrices (RDMs).

    Parameters
    ----------
    images : numpy.ndarray
        ``(92, 175, 175, 3)`` uint8 RGB images, in the order of every RDM.
    stimuli : pandas.DataFrame
        One row per image: ``stimulus`` id (``"img01"`` .. ``"img92"``), ``index`` (0-based), ``category``
        (original label, e.g. ``"human face"``), ``animacy`` (animate/inanimate), ``category4``
        (face/body/natural/artificial), ``species`` (human/nonhuman/"" for inanimate objects) and the
        boolean columns of the paper's category vectors (``animate``, ``face``, ``monkey_ape``, ...).
    rdms : Activations
        :class:`interp.Activations` with dims ``("rdm", "stimulus", "stimulus2")``; ``rdm`` coords are
        ``name``, ``kind`` (brain/model/behaviour), ``species``, ``region``, ``subject``, ``session`` and
        ``description``; both stimulus dims carry :attr:`stimuli`. Names: ``monkey_IT`` (674 neurons,
        1 - Pearson r), ``human_IT`` (the paper's Figure 1 hIT RDM, 316 voxels: the mean of the 8 below),
        ``human_IT_s{1..4}_{1..2}`` (subject, session), ``behaviour_s{1..16}`` (similarity judgements),
        ``model_*`` (animacy, FaceBodyManmadeNatobj, EVA, HMAX, V1, Silhouette, RADON).
    attrs : dict, optional
        Provenance (``source``, ``kind``, ``units``, ``citation``).
    """

    images: np.ndarray
    stimuli: pd.DataFrame
    rdms: Activations
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The RDM names, in order."""
        return self.rdms.coords["rdm"]["name"].tolist()

    def rdm(self, name: str) -> np.ndarray:
        """One RDM as a ``92 x 92`` float64 array (raises :class:`ConfigError` for an unknown name).

        Parameters
        ----------
        name : str
            An RDM name (see :attr:`names`).
        """
        names = self.names
        if name not in names:
            hint = closest(name, names)
            raise ConfigError(f"no RDM named {name!r}; available: {names}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return self.rdms.data[names.index(name)].numpy()

    def upper(self, name: str) -> np.ndarray:
        """The upper triangle (without the diagonal) of an RDM, row-major: 4186 values.

        Parameters
        ----------
        name : str
            An RDM name.
        """
        return self.rdm(name)[np.triu_indices(len(self.stimuli), k=1)]

    def select(self, kind: str | None = None, **coords: Any) -> Activations:
        """The RDMs of one ``kind`` and/or matching other ``rdm`` coordinates, e.g. ``select(species="human")``.

        Parameters
        ----------
        kind : str, optional
            ``"brain"``, ``"model"`` or ``"behaviour"``; None: any kind.
        **coords
            Other ``rdm`` coordinates: a value, a list of values, or a callable returning a boolean mask.
        """
        if kind is not None:
            coords["kind"] = kind
        table = self.rdms.coords["rdm"]
        mask = np.ones(len(table), dtype=bool)
        for name, want in coords.items():
            if name not in table.columns:
                hint = closest(name, table.columns)
                raise ConfigError(f"no RDM coordinate {name!r}; RDM coordinates are {list(table.columns)}"
                                  + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            values = table[name].to_numpy()
            if callable(want):
                mask &= np.asarray(want(values), dtype=bool)
            elif isinstance(want, (list, tuple, set)):
                mask &= np.isin(values, list(want))
            else:
                mask &= values == want
        if not mask.any():
            raise ConfigError(f"no RDM matches {coords}")
        return self.rdms.isel(rdm=mask)

    def images_tensor(self) -> torch.Tensor:
        """The images as a float tensor ``(92, 3, 175, 175)`` in [0, 1] (channels first, for vision models)."""
        return torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div(255.0)

    def to_frame(self) -> pd.DataFrame:
        """One row per RDM with its coordinates (name, kind, species, subject, session, ...)."""
        return self.rdms.coords["rdm"].copy()

    def plot(self, name: str = "monkey_IT"):
        """A plotly heatmap of one RDM (rank-transformed colour scale as in the paper is up to the caller).

        Parameters
        ----------
        name : str, optional
            The RDM to show (default ``"monkey_IT"``).
        """
        import plotly.graph_objects as go

        labels = self.stimuli["stimulus"] + " " + self.stimuli["category"]
        fig = go.Figure(go.Heatmap(z=self.rdm(name), x=labels, y=labels, colorscale="Viridis",
                                   colorbar={"title": "dissimilarity"}))
        return themed(fig, title=f"Kriegeskorte 92 images: {name}", yaxis={"autorange": "reversed"},
                      xaxis={"showticklabels": False}, yaxis_showticklabels=False)


def _loadmat(path):
    from scipy.io import loadmat

    return loadmat(str(require_file(path, "Kriegeskorte 92 file")))


def _text(value: Any) -> str:
    return str(np.asarray(value).ravel()[0])


def _stimuli(supplement: dict) -> tuple[np.ndarray, pd.DataFrame]:
    entries = supplement["stimuli_92objs"].ravel()
    if len(entries) != 92:
        raise SchemaError(f"expected 92 stimuli in the supplementary file, found {len(entries)}")
    images = np.stack([np.asarray(e["image"], dtype=np.uint8) for e in entries])
    category = [_text(e["category"]) for e in entries]
    human = np.array([int(np.asarray(e["human"]).ravel()[0]) for e in entries], dtype=bool)
    face = np.array([int(np.asarray(e["face"]).ravel()[0]) for e in entries], dtype=bool)
    animal = np.array([int(np.asarray(e["animal"]).ravel()[0]) for e in entries], dtype=bool)
    natural = np.array([int(np.asarray(e["natural"]).ravel()[0]) for e in entries], dtype=bool)
    category4 = np.where(animal, np.where(face, "face", "body"), np.where(natural, "natural", "artificial"))
    frame = pd.DataFrame({
        "stimulus": [f"img{i + 1:02d}" for i in range(92)],
        "index": np.arange(92),
        "category": category,
        "animacy": np.where(animal, "animate", "inanimate"),
        "category4": category4,
        "species": np.where(animal, np.where(human, "human", "nonhuman"), ""),
    })
    vector_names = [_text(v) for v in supplement["categoryLabels"].ravel()]
    vectors = np.asarray(supplement["categoryVectors"]).astype(bool)
    for j, raw in enumerate(vector_names):
        if raw in _CATEGORY_VECTORS:
            frame[_CATEGORY_VECTORS[raw]] = vectors[:, j]
    return images, frame


def _square(rdm: Any) -> np.ndarray:
    from scipy.spatial.distance import squareform

    rdm = np.asarray(rdm, dtype=np.float64)
    if rdm.shape == (92, 92):
        return rdm
    if rdm.size == 92 * 91 // 2:
        return squareform(rdm.ravel(), checks=False)
    raise SchemaError(f"an RDM should be 92x92 or 4186 values, got shape {rdm.shape}")


def _rdm_table(root, supplement: dict) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    matrices: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []

    def add(matrix, name, kind, description, species="", region="", subject=0, session=0):
        matrices.append(_square(matrix))
        rows.append({"name": name, "kind": kind, "species": species, "region": region,
                     "subject": subject, "session": session, "description": description})

    figure1 = {_text(r["name"]): r["RDM"] for r in supplement["RDMs_mIT_hIT_fig1"].ravel()}
    monkey = next(k for k in figure1 if k.startswith("mIT"))
    human = next(k for k in figure1 if k.startswith("hIT"))
    add(figure1[monkey], "monkey_IT", "brain", f"{monkey}: 1 - Pearson r over 674 IT neurons (Kiani 2007)",
        "monkey", "IT")
    add(figure1[human], "human_IT", "brain", f"{human}: Figure 1 human IT RDM (mean of the 8 subject-session RDMs)",
        "human", "IT")
    brain = _loadmat(root / _FILES["brain"])["RDMs"]
    n_subjects, n_sessions = brain.shape[-2], brain.shape[-1]
    for s in range(n_subjects):
        for t in range(n_sessions):
            entry = brain[0, s, t]
            add(entry["RDM"], f"human_IT_s{s + 1}_{t + 1}", "brain", _text(entry["name"]), "human", "IT", s + 1, t + 1)
    for i, entry in enumerate(_loadmat(root / _FILES["behaviour"])["rdms_behav_92"].ravel()):
        add(entry["RDM"], f"behaviour_s{i + 1}", "behaviour", _text(entry["name"]), "human", "", i + 1, 0)
    for entry in _loadmat(root / _FILES["models"])["Models"].ravel():
        name = _text(entry["name"])
        if name == "monkeyIT":  # identical to monkey_IT (checked in tests/test_data.py)
            continue
        add(entry["RDM"], f"model_{name}", "model", f"model RDM {name} (rsatoolbox 92_modelRDMs.mat)")
    return matrices, rows


def load_kriegeskorte92() -> Kriegeskorte92:
    """Load the 92-image stimulus set with its RDMs (see :class:`Kriegeskorte92`).

    Reproduces the paper's monkey-human correspondence: the Spearman correlation between the upper
    triangles of ``monkey_IT`` and the mean of the eight ``human_IT_s*_*`` RDMs (equivalently
    ``human_IT``) is 0.439.
    """
    root = data_root("kriegeskorte92", "kriegeskorte92", vendored=True, env="INTERP_KRIEGESKORTE92")
    supplement = _loadmat(root / _FILES["supplement"])
    images, stimuli = _stimuli(supplement)
    matrices, rows = _rdm_table(root, supplement)
    attrs = {"source": "kriegeskorte92", "kind": "recording", "units": "dissimilarity (1 - Pearson r for brain RDMs)",
             "citation": CITATION, "path": str(root)}
    rdms = Activations(torch.from_numpy(np.stack(matrices)), ("rdm", "stimulus", "stimulus2"),
                       {"rdm": pd.DataFrame(rows), "stimulus": stimuli, "stimulus2": stimuli}, attrs)
    return Kriegeskorte92(images=images, stimuli=stimuli, rdms=rdms, attrs=dict(attrs))
