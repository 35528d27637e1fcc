"""Writes notebooks/06_neuron_paths.ipynb (run: python notebooks/make_06_neuron_paths.py)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# 06 — Neuron paths: layer-progressive Joint Attribution\n\n"
        "After Wang et al., *Discovering Influential Neuron Path in Vision Transformers* (ICLR 2025). "
        "A path is one MLP neuron per layer at the CLS token (ViT) or the last position (LM). "
        "The **Joint Attribution Score** integrates the gradient of P(target) along a straight line on which "
        "the path neurons go from 0 to their value together; the search adds, layer by layer, the neuron "
        "that maximises it. All m = 20 interpolation steps run as one batched forward/backward per layer."),
    new_code_cell(
        "import torch\n"
        "import interp.models\n"
        "from interp.models.digits import load_digits_split\n"
        "from patching import paths as P\n\n"
        "model, preprocess = interp.models.load('digits-vit')\n"
        "split = load_digits_split()\n"
        "x = preprocess(split.test_images[:30])\n"
        "y = torch.tensor(split.test_labels[:30])\n"
        "sites = P.mlp_sites(model)\n"
        "sites"),
    new_markdown_cell("## One path per image\n`indices[b, l, k]` is the k-th neuron of layer l for image b; "
                      "`jas` its Joint Attribution Score; `passes` counts forward/backward passes."),
    new_code_cell(
        "paths = P.find_paths(model, x, y, sites, position=0, steps=20)\n"
        "print(paths.passes, f'{paths.seconds:.2f} s')\n"
        "paths.to_frame().head(8)"),
    new_code_cell("paths.plot(title='JAS paths of 30 digits (node size = how many paths use the neuron)')"),
    new_markdown_cell("## Validation: remove (x0) and enhance (x2) the path neurons\n"
                      "Against the authors' baselines, the argmax-activation path and their influence pattern "
                      "(`mean_gradient`, as `path/influence_pattern.py` computes it: one path per class), and random "
                      "paths. The headline is theirs: p_edit / p_clean per image, averaged per class "
                      "(`ratio_p_class`, 95% CI over classes); the change of P(target) is beside it."),
    new_code_cell(
        "cmp = P.compare_paths(model, x, y, sites, position=0, steps=20, n_random=3)\n"
        "cmp.means()[['op', 'method', 'ratio_p_class', 'ratio_p_class_lo', 'ratio_p_class_hi', 'jas', 'delta_p']].round(4)"),
    new_code_cell("cmp.contrast('jas', op='remove', column='ratio_p').round(4)"),
    new_code_cell("cmp.plot()"),
    new_markdown_cell("## Paths of the same digit look alike\nMean Jaccard overlap of the neuron sets per layer, "
                      "within vs across classes, with a label-permutation p-value."),
    new_code_cell(
        "sim = P.path_similarity(cmp.paths['jas'], y.numpy(), n_permutations=500)\n"
        "print(sim.to_frame().round(4))\n"
        "sim.plot()"),
    new_markdown_cell("The authors compare classes by the cosine of their path-neuron frequency vectors "
                      "(`pair-sim.py`); `frequency_similarity` adds a split-half within/across contrast. Their pruning "
                      "keeps each class's most frequent path neurons and zeroes a random fraction of the others."),
    new_code_cell(
        "freq = P.frequency_similarity(cmp.paths['jas'], y.numpy(), n_units=128, n_permutations=200)\n"
        "print(freq.summary())\n"
        "print(freq.most_similar(2).head(6))\n"
        "pruned = P.prune(model, x, y, cmp.paths['jas'], fraction=0.5)\n"
        "print('pruning half of the other neurons: p_edit / p_clean per class',\n"
        "      pruned.groupby('target')['ratio_p'].mean().round(3).to_dict())"),
    new_markdown_cell("## Top-K per layer\nThe paper's top-K variant keeps K neurons per layer; the baseline "
                      "of the search zeroes all of them."),
    new_code_cell(
        "top3 = P.find_paths(model, x[:10], y[:10], sites, position=0, top_k=3)\n"
        "P.manipulate(model, x[:10], y[:10], top3, op='remove')[['sample', 'p_clean', 'p_edit', 'delta_p']]"),
    new_markdown_cell(
        "## Language models\nThe same search runs on any TransformerBridge at the last position "
        "(`blocks.L.mlp.hook_post`). Here a tiny randomly initialised bridge keeps the notebook fast; "
        "`benchmarks/paths.py` runs smollm2-135m on factual prompts such as "
        "'The capital of France is' -> ' Paris' (`P.FACTUAL_PROMPTS`, `P.lm_inputs`)."),
    new_code_cell(
        "from transformer_lens.config import TransformerBridgeConfig\n"
        "from transformer_lens.model_bridge import TransformerBridge\n\n"
        "lm = TransformerBridge.boot_native(TransformerBridgeConfig(d_model=32, n_layers=3, n_heads=4, d_head=8,\n"
        "    n_ctx=16, d_vocab=50, d_mlp=64, act_fn='gelu', normalization_type='LN', seed=0))\n"
        "tokens = torch.randint(0, 50, (4, 7), generator=torch.Generator().manual_seed(0))\n"
        "lm_paths = P.find_paths(lm, tokens, torch.tensor([1, 2, 3, 4]), position=-1, steps=10)\n"
        "lm_paths.to_frame().pivot(index='sample', columns='site', values='neuron')"),
    new_markdown_cell("## HTML report\n`Report(title).add(result)` places any result as a section; "
                      "the CLI does the same: `interp paths digits-vit --compare --out paths.html`."),
    new_code_cell(
        "import tempfile, os\nfrom interp.report.html import Report\n"
        "rep = Report('Neuron paths: digits-vit')\n"
        "rep.add(cmp, title='Remove / enhance path neurons')\n"
        "rep.add(sim, title='Path similarity within vs across classes')\n"
        "out = rep.write(os.path.join(tempfile.mkdtemp(), 'paths.html'))\n"
        "out.stat().st_size > 0"),
]

nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}})
path = Path(__file__).with_name("06_neuron_paths.ipynb")
nbformat.write(nb, path)
print(f"wrote {path}")
