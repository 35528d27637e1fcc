"""``interp capture`` run as one rank of a torchrun job, for the distributed tests.

    torchrun --standalone --nproc-per-node 2 tests/_capture_job.py TEXTS STORE [RANK:POINT:NTH]

With the third argument, that rank SIGKILLs itself inside the store at ``POINT`` after ``NTH`` appends (see
``tests/_store_job.py``).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

if __name__ == "__main__":
    from _store_job import kill_at

    import interp.cli

    texts, store = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        rank, point, nth = sys.argv[3].split(":")
        if int(os.environ["RANK"]) == int(rank):
            kill_at(point, int(nth))
    sys.exit(interp.cli.main(["capture", "induction-2l", "--sites", "blocks.*.hook_resid_post", "--texts", texts,
                              "--out", store, "--batch-size", "2", "--quiet"]))
