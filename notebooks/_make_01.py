"""Writes notebooks/01_capture.ipynb (run: python notebooks/_make_01.py)."""

import nbformat as nbf

cells = [
    ("md", "# 01 · Capture: one tensor for models and brains\n\n"
           "`interp.capture(model, inputs, sites)` runs a model over inputs in batches and returns what the named sites "
           "computed as `interp.Activations`, the labeled tensor every analysis reads. Recordings come back as the same type."),
    ("code", "import torch\nimport interp\nfrom interp.models.induction import make_repeated_tokens\n\n"
             "model, tokenizer = interp.models.load('induction-2l')   # trained locally once, then cached\n"
             "data = make_repeated_tokens(32, seq_len=48, seed=7)\n"
             "acts = interp.capture(model, data.tokens, 'blocks.*.attn.hook_z', positions='last', batch_size=16)\n"
             "acts"),
    ("md", "A glob gives a `dict` of sites; one exact name gives one `Activations`. Dims are named, and coordinates "
           "travel with the data."),
    ("code", "z = acts['blocks.1.attn.hook_z']\nprint(z)\nprint(z.dims, z.sizes)\nz.coords['unit'].head()"),
    ("md", "## Positions\n`positions='all'` keeps the position axis; `'tokens'` gives one row per real token (what SAEs and "
           "unit statistics want); `'last'`, `'mean'`, or one index per sample reduce it."),
    ("code", "tok = interp.capture(model, data.tokens[:4], 'blocks.0.hook_resid_post', positions='tokens')\n"
             "tok.coords['sample'].head()"),
    ("md", "## Selection, reductions and interop"),
    ("code", "pattern = interp.capture(model, data.tokens[:8], 'blocks.1.attn.hook_pattern')\n"
             "print(pattern.dims)\nmean_pattern = pattern.mean('sample')\n"
             "head0 = pattern.sel(head=0)\nprint(head0.shape)\n"
             "pattern.isel(sample=0, head=0).to_xarray()"),
    ("md", "## Gradients\nPass a scalar metric to also capture d metric / d site (attribution methods use this)."),
    ("code", "def metric(logits, batch):\n    return logits[:, -1].log_softmax(-1).max(-1).values.sum()\n\n"
             "res = interp.capture(model, data.tokens[:8], ['blocks.0.hook_resid_post'], grads=metric)\n"
             "res.grads['blocks.0.hook_resid_post'].data.norm()"),
    ("md", "## Streaming to disk\nWith `store=` the capture streams to sharded `.npy` files with a JSON manifest; an "
           "interrupted capture resumes where it stopped, and minibatches come back in random order for training."),
    ("code", "import tempfile, os\nroot = tempfile.mkdtemp()\n"
             "store = interp.capture(model, data.tokens, 'blocks.*.hook_resid_post', store=os.path.join(root, 'acts'), batch_size=8)\n"
             "print(store)\nbatch = next(store.minibatches('blocks.1.hook_resid_post', batch_size=256))\nbatch.shape"),
    ("md", "## Plan a long capture first\n`plan_capture` says what a capture into a store will cost, without running the "
           "corpus: bytes per token at the sites, store size and peak memory (weights, one batch, token ids), measured "
           "on six probe sequences. `interp capture MODEL --sites ... --n-tokens N --dry-run` prints the same."),
    ("code", "from interp.capture_plan import plan_capture\n"
             "plan = plan_capture(model, 'blocks.*.hook_resid_post', n_tokens=50_000_000, seq_len=48, batch_size=8)\n"
             "print(plan.summary())\nplan.to_frame()"),
    ("md", "## What the store guarantees\nOne writer at a time (a second one is refused, naming the holder, or waits with "
           "`wait=True`); a record of what the store was made from, so a resume with other inputs, sites or positions is "
           "refused; checksums checked on read; the ranks of one `torchrun` job write one store "
           "(`ActivationStore.create(path, rank=, world_size=)`) and each rank reads its own part of every shuffled minibatch."),
    ("code", "from interp.store import ActivationStore, rank_range\n"
             "print(store.fingerprint['sites'], store.fingerprint['positions'], store.fingerprint['inputs'])\n"
             "try:  # same store, other positions: refused instead of mixing two jobs\n"
             "    interp.capture(model, data.tokens, 'blocks.*.hook_resid_post', store=store.path, positions='last')\n"
             "except interp.FingerprintError as err:\n    print(err)\n"
             "writer = ActivationStore.create(os.path.join(root, 'other'), {'x': (4,)})\n"
             "try:  # a second writer while the first one holds the lock\n"
             "    ActivationStore.create(os.path.join(root, 'other'), {'x': (4,)})\n"
             "except interp.StoreLockedError as err:\n    print(err)\n"
             "writer.close()\n"
             "parts = [next(store.verify().minibatches('blocks.1.hook_resid_post', 256, seed=0, rank=r, world_size=2)).shape[0] for r in range(2)]\n"
             "parts, list(rank_range(10, 1, 2))"),
    ("md", "## Any nn.Module\nOn a plain module the sites are module paths; `path:input` captures the input."),
    ("code", "net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))\n"
             "images = torch.randn(10, 3, 16, 16)\n"
             "feats = interp.capture(net, images, ['0', '4:input'], spatial='mean')\n"
             "{k: v.dims for k, v in feats.items()}"),
    ("md", "## Recordings are the same type\nA recording loads as `Activations` too, so every analysis reads both."),
    ("code", "hip = interp.data.load('hippocampus')\nhip"),
    ("md", "## Bad input gets a clear error"),
    ("code", "try:\n    interp.capture(model, data.tokens, 'blocks.0.attn.hook_patern')\n"
             "except interp.SiteError as err:\n    print(err)"),
]
nb = nbf.v4.new_notebook()
nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/01_capture.ipynb")
