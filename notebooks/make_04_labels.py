"""Write notebooks/04_labels.ipynb (run: python notebooks/make_04_labels.py)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# 04 · Neuron labels for model units and recorded neurons\n\n"
        "One streaming pass gives per-unit statistics and exemplars; detectors flag phenomena; label sources "
        "(vocabulary projection, exemplar n-grams, concept tests) feed an explainer; every label gets a held-out "
        "score; a self-contained HTML report shows it all. Small settings so the notebook runs in a few minutes."),
    nbf.v4.new_code_cell(
        "import torch, interp\n"
        "from interp.label.pipeline import label_heads, label_neurons, label_recordings, label_place_cells\n"
        "from interp.label.report import build_label_report\n"
        "torch.manual_seed(0)"),
    nbf.v4.new_markdown_cell("## Attention heads of `induction-2l`\nPrevious-token, induction and duplicate-token "
                             "scores from attention patterns on repeated random tokens; labeled on one set, scored on another."),
    nbf.v4.new_code_cell(
        "from interp.models.induction import make_repeated_tokens\n"
        "model, _ = interp.models.load('induction-2l')\n"
        "heads = label_heads(model, make_repeated_tokens(32, seed=11).tokens, make_repeated_tokens(32, seed=12).tokens,\n"
        "                    title='induction-2l heads')\n"
        "heads.to_frame()[['name', 'label', 'score', 'previous_token', 'induction']]"),
    nbf.v4.new_code_cell("heads.heads.plot()"),
    nbf.v4.new_markdown_cell("## MLP neurons of `smollm2-135m` (layer 6) over an offline corpus\n"
                             "The default corpus is the Python documentation text shipped with CPython. "
                             "Here 3,000 tokens and the first 128 neurons keep it quick."),
    nbf.v4.new_code_cell(
        "lm, _ = interp.models.load('smollm2-135m')\n"
        "neurons = label_neurons(lm, 'blocks.6.mlp.hook_post', n_tokens=3000, units=range(128), title='smollm2-135m L6')\n"
        "neurons.to_frame().sort_values('score', ascending=False).head(10)[['name', 'label', 'score', 'phenomena']]"),
    nbf.v4.new_code_cell("neurons.stats.plot(int(neurons.table.sort_values('score').iloc[-1]['unit']))"),
    nbf.v4.new_code_cell("neurons.vocab_in.to_frame().sort_values('top_prob', ascending=False).head(5)"),
    nbf.v4.new_markdown_cell("## C. elegans neurons by behaviour, pooled over 7 worms\n"
                             "Circular-shift p-values (autocorrelation-safe), BH-FDR, then a hypergeometric test: are "
                             "the reversal-active neurons enriched for AVA, AVE, RIM and AIB?"),
    nbf.v4.new_code_cell(
        "from interp.label.concepts import pooled_concept_test, enrichment_test\n"
        "from interp.errors import DataNotFoundError\n"
        "try:\n"
        "    worms = interp.data.load('celegans')\n"
        "except DataNotFoundError as exc:\n"
        "    worms = None\n"
        "    print('celegans data not available:', exc)\n"
        "if worms:\n"
        "    tests = pooled_concept_test(worms, 'reversal', by='canonical', n_perm=300)\n"
        "    active = tests.significant(direction='+')['canonical']\n"
        "    print(enrichment_test(active, tests.frame['canonical'], ['AVA', 'AVE', 'RIM', 'AIB']))\n"
        "    worm_labels = label_recordings(worms, ['reversal', 'velocity'], by='canonical', n_perm=300,\n"
        "                                   title='C. elegans neurons')"),
    nbf.v4.new_markdown_cell(
        "Your own recording goes the same way: any `Activations` with the behaviour as sample coordinates "
        "(`interp.data.loaders.from_numpy(x, coords={'sample': {'running': r}})`, `load_nwb`, ...). From the command "
        "line, save it (`rec.save('rec.safetensors')`) and run `interp label rec.safetensors --annotations running "
        "speed --out units.html`; NWB and `.mat` files are read directly (`interp label --help`)."),
    nbf.v4.new_markdown_cell("## Hippocampal place cells (linear track)"),
    nbf.v4.new_code_cell(
        "rec = interp.data.load('hippocampus', environment='linear-track', bin_size=0.1)\n"
        "place = label_place_cells(rec, n_shuffle=200)\n"
        "place.place.plot()"),
    nbf.v4.new_markdown_cell("## One self-contained report\nOpen the file in a browser: sort and filter the index, "
                             "click a unit to open its card. It works offline."),
    nbf.v4.new_code_cell(
        "import tempfile, os\n"
        "results = [heads, neurons, place] + ([worm_labels] if worms else [])\n"
        "path = build_label_report(results, os.path.join(tempfile.mkdtemp(), 'labels.html'))\n"
        "print(path, f'{path.stat().st_size / 1e6:.1f} MB')"),
]

nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                "language": "python"}})
out = Path(__file__).with_name("04_labels.ipynb")
nbf.write(nb, out)
print(f"wrote {out}")
