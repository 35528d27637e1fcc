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
        "from interp.label import label_heads, label_neurons, label_recordings, label_place_cells\n"
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
        "    tests = pooled_concept_test(worms, 'reversal', by='canonical', n_permutations=300)\n"
        "    active = tests.significant(direction='+')['canonical']\n"
        "    print(enrichment_test(active, tests.frame['canonical'], ['AVA', 'AVE', 'RIM', 'AIB']))\n"
        "    worm_labels = label_recordings(worms, ['reversal', 'velocity'], by='canonical', n_permutations=300,\n"
        "                                   title='C. elegans neurons')"),
    nbf.v4.new_markdown_cell(
        "Your own recording goes the same way: any `Activations` with the behaviour as sample coordinates "
        "(`interp.data.loaders.from_numpy(x, coords={'sample': {'running': r}})`, `load_nwb`, ...). From the command "
        "line, save it (`rec.save('rec.safetensors')`) and run `interp label rec.safetensors --annotations running "
        "speed --out units.html`; NWB and `.mat` files are read directly (`interp label --help`)."),
    nbf.v4.new_markdown_cell("## Hippocampal place cells (linear track)"),
    nbf.v4.new_code_cell(
        "rec = interp.data.load('hippocampus', environment='linear-track', bin_size=0.1)\n"
        "place = label_place_cells(rec, n_permutations=200)\n"
        "place.place.plot()"),
    nbf.v4.new_markdown_cell(
        "## Trial-aware statistics on synthetic data with a planted answer\n"
        "A recording is a time series: neighbouring samples are correlated, so shuffling single samples builds a "
        "null that is far too narrow and labels untuned units as selective. With `groups='trial'` every test in "
        "`interp.label` swaps whole trials instead (`interp.stats.group_permutations`); without groups a time "
        "series gets circular shifts. Below: 24 **untuned** units (AR(1) noise, rho 0.95) recorded over 48 reach "
        "trials to 8 targets, plus two planted units: unit 3 fires for target 5, unit 7 fires for target 2 and "
        "is silenced by target 6."),
    nbf.v4.new_code_cell(
        "import numpy as np\n"
        "from scipy.signal import lfilter\n"
        "from interp import Activations\n"
        "from interp.label import category_selectivity, concept_test\n"
        "rng = np.random.default_rng(0)\n"
        "n_trials, T, units = 48, 30, 24\n"
        "noise = lfilter([1.0], [1.0, -0.95], rng.normal(size=(n_trials * T, units)), axis=0)  # AR(1), untuned\n"
        "trial = np.repeat(np.arange(n_trials), T)\n"
        "target = np.repeat(rng.permutation(np.repeat(np.arange(8), 6)), T)\n"
        "noise[:, 3] += 6.0 * (target == 5)                      # the planted answers: unit 3 prefers target 5,\n"
        "noise[:, 7] += 8.0 * (target == 2) - 8.0 * (target == 6)  # unit 7 target 2 over target 6\n"
        "units_rec = Activations(torch.tensor(noise), ('sample', 'unit'), {'sample': {'trial': trial, 'target': target}},\n"
        "                        {'source': 'synthetic reaching'})\n"
        "by_trial = category_selectivity(units_rec, 'target', groups='trial', n_permutations=4000)\n"
        "by_sample = category_selectivity(units_rec, 'target', null='permutation', n_permutations=1000)\n"
        "flagged = lambda t: t.frame.groupby('unit')['significant'].any().mean()\n"
        "print(by_trial.summary().splitlines()[0])\n"
        "print(f'units flagged: whole-trial null {flagged(by_trial):.0%}, single-sample permutation {flagged(by_sample):.0%}')\n"
        "by_trial.significant()[['unit', 'concept', 'effect', 'q_value']]"),
    nbf.v4.new_markdown_cell(
        "## Tuning curves\nMean activity per target with 95% confidence intervals from a bootstrap that resamples "
        "whole trials (without trials, a time series is resampled in blocks)."),
    nbf.v4.new_code_cell(
        "from interp.label import tuning_curves\n"
        "curves = tuning_curves(units_rec, 'target', groups='trial', n_bootstraps=500)\n"
        "print(curves.summary())\n"
        "curves.plot(units=[3, 7, 0])"),
    nbf.v4.new_markdown_cell(
        "## Direction tuning (cosine fit) on planted reaching data\n"
        "`direction_tuning` fits `rate = b0 + b1 cos(theta) + b2 sin(theta)` to the direction of hand velocity "
        "(Georgopoulos et al. 1982): preferred direction, modulation depth, r2, and a p-value from swapping whole "
        "trials, BH-corrected. Ten units are planted with known preferred directions (amplitude 4 over a 10 Hz "
        "baseline, AR(1) noise of sd 1: SNR 4); ten are untuned."),
    nbf.v4.new_code_cell(
        "from interp.label import direction_tuning\n"
        "phi = np.deg2rad(target * 45.0) + np.deg2rad(15) * rng.normal(size=n_trials * T)   # reach direction\n"
        "speed = np.tile(np.sin(np.linspace(0, np.pi, T + 2)[1:-1]) ** 2, n_trials)\n"
        "planted_pd = rng.uniform(0, 360, 10)\n"
        "e = lfilter([1.0], [1.0, -0.9], rng.normal(size=(n_trials * T, 20)) * np.sqrt(1 - 0.81), axis=0)\n"
        "rate = 10 + e\n"
        "rate[:, :10] += 4 * np.cos(phi[:, None] - np.deg2rad(planted_pd))\n"
        "reach = Activations(torch.tensor(rate), ('sample', 'unit'),\n"
        "                    {'sample': {'trial': trial, 'vx': speed * np.cos(phi), 'vy': speed * np.sin(phi)}})\n"
        "tuning = direction_tuning(reach, x='vx', y='vy', groups='trial', n_permutations=1000)\n"
        "print(tuning.summary())   # the Rayleigh test asks whether the preferred directions cluster\n"
        "frame = tuning.to_frame()\n"
        "frame['planted_pd'] = np.r_[planted_pd, [np.nan] * 10]\n"
        "frame[['unit', 'label', 'preferred_direction_deg', 'planted_pd', 'modulation_depth', 'r2', 'q_value']]"),
    nbf.v4.new_code_cell("tuning.plot(units=[0, 1, 2, 15])"),
    nbf.v4.new_markdown_cell(
        "The same function takes an angle directly (head direction, in radians or `degrees=True`) and reports the "
        "circular statistics of the binned curve; and it works on model units, any `(sample, unit)` activations."),
    nbf.v4.new_code_cell(
        "hd = np.rad2deg(np.cumsum(rng.normal(0, 0.2, 4000))) % 360          # the head's random walk\n"
        "lam = 0.2 + 2.0 * np.exp(3 * (np.cos(np.deg2rad(hd - 200)) - 1))     # a head-direction cell preferring 200 deg\n"
        "cells = Activations(torch.tensor(np.c_[rng.poisson(lam), rng.poisson(1.0, 4000)], dtype=torch.float32),\n"
        "                    ('sample', 'unit'), {'sample': {'hd': hd}}, {'dt': 0.02})\n"
        "hd_tuning = direction_tuning(cells, angle='hd', degrees=True, n_permutations=500)\n"
        "hd_tuning.to_frame()[['unit', 'label', 'mean_direction_deg', 'resultant_length', 'p_value']]"),
    nbf.v4.new_markdown_cell(
        "Categorical labels (tested by mutual information) are scored on held-out trials by how well the unit "
        "decodes the category, next to chance, and carry no direction arrow:"),
    nbf.v4.new_code_cell(
        "target_labels = label_recordings(units_rec, ['target'], groups='trial', n_permutations=2000, fit_fraction=0.75)\n"
        "target_labels.to_frame().query('label != \"no significant behaviour tuning\"')[\n"
        "    ['name', 'label', 'score', 'score_kind', 'chance']]"),
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
