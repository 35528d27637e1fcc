"""The on-disk activation store, one package: :class:`ActivationStore` and what keeps it honest.

* :mod:`.activation_store`: :class:`ActivationStore` (sharded ``.npy`` + a sealed JSON manifest; the layout and
  the guarantees are in that module's docstring);
* ``_read``: the read side (checked shards, minibatches, a rank's rows);
* ``_manifest``: the sealed manifest and the folder claimed before writing;
* ``_attach``: joining an existing store as its writer or an admitted rank, the fingerprint compared;
* ``_commit``: the background group commit that makes appends durable;
* ``_ranks``: several ranks write and one commits (ledgers, :func:`rank_range`);
* ``_lock``: the writer lock (``flock``, ``O_NOFOLLOW``);
* ``_fingerprint``: :func:`fingerprint` of a job (every weight, the inputs' contents, the library version).

File checksums (``interp._integrity``) and atomic writes (``interp._files``) live one floor down because
the tensor and the decompose checkpoints use them too.
"""

from __future__ import annotations

from ._fingerprint import fingerprint
from ._ranks import rank_range
from .activation_store import FORMAT_VERSION, READABLE, ActivationStore

__all__ = ["ActivationStore", "FORMAT_VERSION", "READABLE", "fingerprint", "rank_range"]
