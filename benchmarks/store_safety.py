"""Cost of the store's issue-22 safety work: the whole-model weight fingerprint (every parameter and buffer
hashed, streamed in chunks) against the strided 1,024-values-per-tensor sample it replaces, on smollm2-135m.

Run (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/store_safety.py
"""

from __future__ import annotations

import time

import torch
import xxhash


def strided_sample(model: torch.nn.Module) -> str:
    """The previous fingerprint: 1,024 strided values of each tensor (kept here only to time it)."""
    h = xxhash.xxh3_64()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        flat = t.detach().reshape(-1)
        if flat.numel() > 1024:
            flat = flat[:: flat.numel() // 1024][:1024]
        h.update(memoryview(flat.contiguous().cpu().view(torch.uint8).numpy()))
    return h.hexdigest()


def main() -> None:
    import interp
    from interp.store._fingerprint import _parameters

    torch.set_num_threads(1)
    model, _ = interp.models.load("smollm2-135m")
    tensors = list(model.parameters()) + list(model.buffers())
    n = sum(t.numel() for t in tensors)
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    for label, fn in (("whole model (this branch)", _parameters), ("strided sample (before)", strided_sample)):
        times = []
        for _ in range(4):
            start = time.perf_counter()
            fn(model)
            times.append(time.perf_counter() - start)
        print(f"smollm2-135m ({n / 1e6:.1f} M values, {nbytes / 1e6:.0f} MB): {label}: first {times[0]:.2f} s, "
              f"best of the next 3 {min(times[1:]):.3f} s")


if __name__ == "__main__":
    main()
