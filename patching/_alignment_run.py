"""The machinery of :func:`patching.alignment.brain_alignment`: running a model over the stimuli with
ablations, running means for mean ablations, and replaying the blocks before the first ablated one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from interp import engine
from interp._progress import tqdm
from interp.engine import Hook, Phase
from interp.tensor import Activations

from .interventions import Intervention, intervene
from .interventions import mean as mean_ablation
from .interventions import zero as zero_ablation

if TYPE_CHECKING:
    from .alignment import Ablation


def _rows(act: torch.Tensor) -> torch.Tensor:
    """Feature rows of an activation: ``(N, C, H, W) -> (N*H*W, C)``, ``(..., d) -> (-1, d)``."""
    return act.movedim(1, -1).reshape(-1, act.shape[1]) if act.ndim == 4 else act.reshape(-1, act.shape[-1])


def _unrows(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.ndim == 4:
        n, c, h, w = like.shape
        return rows.reshape(n, h, w, c).movedim(-1, 1)
    return rows.reshape(like.shape)


def _tensor(out: Any) -> torch.Tensor:
    """A decomposition's output (Activations, tensor or array) as a tensor."""
    out = out.data if isinstance(out, Activations) else out
    return out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))


class _Stats:
    """Running means over the stimuli of the activation at a site (and of a decomposition's codes)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0
        self.codes: dict[int, torch.Tensor] = {}
        self.code_rows: dict[int, int] = {}

    def add(self, act: torch.Tensor, decompositions: Sequence[Any]) -> None:
        a = act.detach().double()
        self.total = a.sum(0, keepdim=True) if self.total is None else self.total + a.sum(0, keepdim=True)
        self.count += a.shape[0]
        for dec in decompositions:
            c = _tensor(dec.transform(_rows(act.detach()).to(_dtype_of(dec)))).double()
            key = id(dec)
            self.codes[key] = c.sum(0) if key not in self.codes else self.codes[key] + c.sum(0)
            self.code_rows[key] = self.code_rows.get(key, 0) + c.shape[0]

    def mean(self) -> torch.Tensor:
        return self.total / self.count

    def mean_codes(self, dec: Any) -> torch.Tensor:
        return self.codes[id(dec)] / self.code_rows[id(dec)]


def _dtype_of(dec: Any) -> torch.dtype:
    comp = getattr(dec, "components_", None)
    return comp.dtype if isinstance(comp, torch.Tensor) else torch.float32


def _interventions(abl: Ablation, stats: _Stats, bridge: bool = False) -> list[Intervention]:
    """The ablation as :mod:`patching.interventions` specs, with means from the intact run."""
    mean = stats.mean().float()
    if abl.heads is not None:
        return [zero_ablation(abl.site, heads=abl.heads) if abl.kind == "zero" else
                mean_ablation(abl.site, mean, heads=abl.heads)]
    if abl.latents is not None:
        dec, lat = abl.decomposition, torch.as_tensor(np.atleast_1d(abl.latents), dtype=torch.long)
        fill = stats.mean_codes(dec)[lat] if abl.kind == "mean" else None

        def edit(act: torch.Tensor) -> torch.Tensor:
            rows = _rows(act).to(_dtype_of(dec))
            codes = _tensor(dec.transform(rows))
            changed = codes.clone()
            changed[:, lat] = 0.0 if fill is None else fill.to(codes.dtype)
            delta = _tensor(dec.inverse_transform(changed)) - _tensor(dec.inverse_transform(codes))  # bias cancels
            return act + _unrows(delta.to(act.dtype), act)

        return [Intervention(abl.site, "function", fn=edit)]
    if abl.channels is None and abl.channel_group is None:
        return [zero_ablation(abl.site) if abl.kind == "zero" else mean_ablation(abl.site, mean)]
    axis = engine.layout(abl.site, mean.ndim, bridge)["unit"]  # the channel axis of a conv map, else the last
    units = torch.as_tensor(np.atleast_1d(abl.resolved_channels(mean.shape[axis])), dtype=torch.long)
    return [zero_ablation(abl.site, units=units) if abl.kind == "zero" else mean_ablation(abl.site, mean, units=units)]


# ----------------------------------------------------------------------------------------------- runner
def _block_list(model: nn.Module, sites: Sequence[str]) -> tuple[str, nn.ModuleList] | None:
    """The ModuleList of blocks that holds the sites (``_blocks`` in ``_blocks.3._depthwise_act``)."""
    if engine.is_bridge(model):
        return None
    modules = dict(model.named_modules())
    for site in sites:
        parts = site.split(".")
        for i in range(len(parts) - 1, 0, -1):
            path = ".".join(parts[:i])
            if isinstance(modules.get(path), nn.ModuleList) and parts[i].isdigit():
                return path, modules[path]
    return None


class _Runner:
    """Runs the model over batches, records read-outs, replays the blocks before the first ablated one."""

    def __init__(self, model: nn.Module, inputs: Any, batch_size: int, readout: list[str], spatial: str) -> None:
        self.model, self.inputs, self.batch_size, self.readout, self.spatial = model, inputs, batch_size, readout, spatial
        self.n = int(inputs.shape[0])
        self.blocks: tuple[str, nn.ModuleList] | None = None
        self.outputs: list[list[torch.Tensor]] = []
        self.first_block: dict[str, int] = {}
        self.replay = False

    def batches(self) -> Iterator[tuple[int, Any]]:
        for b, start in enumerate(range(0, self.n, self.batch_size)):
            yield b, self.inputs[start:start + self.batch_size]

    def reduce(self, act: torch.Tensor) -> torch.Tensor:
        a = act.detach().double().cpu()
        if self.spatial == "mean" and a.ndim >= 3:
            a = a.mean(dim=tuple(range(2, a.ndim))) if a.ndim == 4 else a.mean(1)
        return a.reshape(a.shape[0], -1)

    def intact(self, ablations: Mapping[str, list], stats_sites: Sequence[str], decs: Mapping[str, list],
               progress: bool) -> tuple[dict[str, torch.Tensor], dict[str, _Stats]]:
        """One intact pass: read-outs, means at the ablated sites, block outputs and the order sites fire in."""
        all_sites = list(dict.fromkeys([*self.readout, *stats_sites]))
        self.blocks = _block_list(self.model, all_sites)
        blocks = list(self.blocks[1]) if self.blocks else []
        stats = {s: _Stats() for s in stats_sites}
        reads: dict[str, list] = {s: [] for s in self.readout}
        order: list[Any] = []
        for b, x in tqdm(list(self.batches()), disable=not progress, desc="intact"):
            seen: dict[str, torch.Tensor] = {}
            outs: list[torch.Tensor] = []

            def keep(site: str, first: bool = b == 0, seen: dict = seen) -> Any:
                def fn(act: torch.Tensor) -> None:
                    if first:
                        order.append(site)
                    seen[site] = act.detach()
                    if len(seen) == len(all_sites):
                        raise engine.StopForward  # the rest of the model is not needed
                return fn

            def block_done(i: int, out: Any, first: bool = b == 0, outs: list = outs) -> None:
                if first:
                    order.append(i)
                outs.append(out)

            with torch.no_grad(), engine.observe_modules(blocks, block_done):
                engine.run(self.model, x, [Hook(s, keep(s), Phase.READ) for s in all_sites], stop_ok=True)
            for s in self.readout:
                reads[s].append(self.reduce(seen[s]))
            for s in stats_sites:
                stats[s].add(seen[s], decs.get(s, []))
            self.outputs.append(outs)
        done = [o for o in order if isinstance(o, int)]
        if blocks and done == list(range(len(done))):  # each block once, in order (up to the last site)
            for o in order:  # a site's index = the blocks completed before it first fires
                if isinstance(o, str):
                    self.first_block.setdefault(o, sum(isinstance(p, int) for p in order[:order.index(o)]))
        return {s: torch.cat(v) for s, v in reads.items()}, stats

    def upto(self, sites: Sequence[str]) -> int:
        if not self.replay:
            return 0
        return min(self.first_block.get(s, 0) for s in [*sites, *self.readout])

    def run(self, specs: list[Intervention], upto: int) -> dict[str, torch.Tensor]:
        """Read-outs under ``specs``; blocks ``0..upto-1`` return their recorded intact output."""
        reads: dict[str, list] = {s: [] for s in self.readout}
        blocks = self.blocks[1] if self.blocks else []
        for b, x in self.batches():
            replay = [(blocks[i], lambda *args, out=self.outputs[b][i], **kwargs: out) for i in range(upto)]
            with torch.no_grad(), intervene(self.model, *specs), engine.overridden(replay):
                acts = engine.record(self.model, x, self.readout, stop=True).acts
            for s in self.readout:
                reads[s].append(self.reduce(acts[s]))
        return {s: torch.cat(v) for s, v in reads.items()}

    def check_replay(self, intact: dict[str, torch.Tensor], upto: int) -> None:
        """Replay only if a replayed intact run reproduces the full intact read-outs."""
        if not self.blocks or upto == 0 or not self.first_block:
            return
        try:
            self.replay = True
            again = self.run([], upto)
            self.replay = all(engine.agrees(again[s], intact[s]) for s in self.readout)
        except Exception:  # noqa: BLE001 - any failure means: no block replay for this model
            self.replay = False

