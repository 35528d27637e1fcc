"""Writes notebooks/03_decompose.ipynb (run: python notebooks/_make_03.py)."""

import nbformat as nbf

cells = [
    ("md", "# 03 · Decompose: sparse autoencoders, SNMF and NMF on models and brains\n\n"
           "`interp.decompose` has scikit-learn style estimators (`fit`, `transform`, `inverse_transform`, `save`/`load`) "
           "that read `interp.Activations`, arrays, an `ActivationStore` or any iterable of minibatches: "
           "`ReLUSAE`, `TopKSAE`, `BatchTopKSAE`, `JumpReLUSAE`, `SNMF` (Shafran, Geiger & Geva 2025) and `NMF`."),
    ("code", "import torch\nimport interp\nfrom interp.decompose import (TopKSAE, BatchTopKSAE, ReLUSAE, JumpReLUSAE, SNMF, NMF,\n"
             "                              planted_features, best_match_cosine)\n"
             "torch.set_num_threads(1)  # small problems: one thread is fastest on a shared machine"),
    ("md", "## Ground truth first: planted sparse features\n16 unit-norm features, each on a quarter of 64 units; "
           "each sample mixes about 3 of them. Every estimator should find them (best-match cosine near 1)."),
    ("code", "planted = planted_features(n_samples=4000, n_units=64, n_features=16, seed=0)\n"
             "common = dict(n_components=32, lr=3e-3, batch_size=256, n_epochs=20, dead_after=2000, progress=False)\n"
             "estimators = {\n"
             "    'TopK': TopKSAE(k=4, **common),\n"
             "    'BatchTopK': BatchTopKSAE(k=4, **common),\n"
             "    'ReLU': ReLUSAE(l1_coefficient=1.0, resample_every=200, **common),\n"
             "    'JumpReLU': JumpReLUSAE(sparsity_coefficient=3.0, bandwidth=1.0, **common),\n"
             "    'SNMF': SNMF(n_components=16, sparsity=0.25, init='kmeans', max_iter=800),\n"
             "}\n"
             "import pandas as pd\nrows = []\n"
             "for name, est in estimators.items():\n"
             "    est.fit(planted.X)\n"
             "    codes = est.transform(planted.X)\n"
             "    recon = est.inverse_transform(codes)\n"
             "    fvu = float(((planted.X.data - recon.data) ** 2).sum() / ((planted.X.data - planted.X.data.mean(0)) ** 2).sum())\n"
             "    rows.append({'estimator': name, 'best-match cosine': float(best_match_cosine(planted.features, est.components_).mean()),\n"
             "                 'L0': float((codes.data != 0).sum(1).float().mean()), 'FVU': fvu})\n"
             "pd.DataFrame(rows).round(3)"),
    ("md", "SAE metrics come as a small result object with `.to_frame()` and `.plot()` (firing-frequency histogram)."),
    ("code", "m = estimators['TopK'].evaluate(planted.X)\nm.plot()"),
    ("md", "## A real language model: SNMF and a TopK SAE on smollm2-135m MLP neurons\n"
           "Capture `blocks.6.mlp.hook_post` (1,536 neurons) for every real token of a few texts."),
    ("code", "model, tok = interp.models.load('smollm2-135m')\n"
             "texts = [\n"
             "    'Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday are the days of the week.',\n"
             "    'The meeting moved from Tuesday to Thursday, and the report is due on Friday morning.',\n"
             "    'January, February and March are cold; July and August are the warmest months of the year.',\n"
             "    'def mean(values):\\n    return sum(values) / len(values)\\n\\nprint(mean([1, 2, 3]))',\n"
             "    'import numpy as np\\nx = np.zeros(10)\\nfor i in range(10):\\n    x[i] = i * i',\n"
             "    'Paris is the capital of France, Berlin of Germany, Madrid of Spain and Rome of Italy.',\n"
             "    'The cat sat on the mat while the dog slept by the fire in the quiet house.',\n"
             "    'She paid 12 dollars and 50 cents, then 7 euros, and finally 300 yen for the tickets.',\n"
             "] * 3\n"
             "site = 'blocks.6.mlp.hook_post'\n"
             "acts = interp.capture(model, texts, site, positions='tokens', batch_size=8, progress=False)\n"
             "acts"),
    ("code", "snmf = SNMF(n_components=12, sparsity=0.05, init='kmeans', max_iter=300, patience=30).fit(acts)\n"
             "sae = TopKSAE(n_components=512, k=16, lr=1e-3, batch_size=128, n_epochs=30, progress=False).fit(acts)\n"
             "print('SNMF relative error', snmf.reconstruction_err_ / float(acts.data.norm()))\n"
             "sae.evaluate(acts).to_frame()"),
    ("md", "### Several SAEs from one pass, on one process or many\n"
           "`interp.decompose.train` feeds every (site, width) from one read of the data; each SAE sees exactly the "
           "batches its own `fit` would, so the 512-latent one below is the SAE trained above, bit for bit. "
           "The same call under `torchrun --nproc-per-node N` trains data parallel (each rank reads its slice of "
           "every global batch; the weights equal one process's to float rounding), and `shard_latents=True` splits "
           "the latents of wide SAEs across ranks (`sae.distributed_` reports bytes per rank)."),
    ("code", "from interp.decompose import train\n"
             "saes = train(acts, 'topk', n_components=[128, 512], k=16, lr=1e-3, batch_size=128, n_epochs=30, progress=False)\n"
             "print('same as the SAE above:', torch.equal(saes[None, 512].components_, sae.components_))\n"
             "pd.DataFrame([{'latents': w, **s.evaluate(acts).to_frame().iloc[0].to_dict()} for (_, w), s in saes.items()]).round(3)"),
    ("md", "### Input side: top-activating tokens of each SNMF feature"),
    ("code", "from interp.decompose.read import top_activating, find_strength, steered_generate\n"
             "from interp.label import vocab_projection\n"
             "top = top_activating(snmf, acts, n=6)\n"
             "top['text'] = [tok.decode([int(t)]) for t in top['token']]   # the token coordinate holds ids\n"
             "top.groupby('component')['text'].apply(list).head(12)"),
    ("md", "### The authors' settings\n`SNMF.paper(tokenizer)` fits as Shafran, Geiger & Geva's code does "
           "(`ordavid-s/snmf-mlp-decomposition`): random start, absolute tolerance 1e-4 with patience, "
           "`eps` 1e-6 in the update as in their current code (`version=\"first_commit\"`: none), BOS and padding rows left out of the fit; contexts are then ranked by the fitted coefficients "
           "(`codes='fitted'`), not by a re-fit. Their scripts use rank 50 and 2,000 iterations; here a smaller rank "
           "and budget keep the notebook quick."),
    ("code", "snmf_paper = SNMF.paper(tok, n_components=12, sparsity=0.05, max_iter=300, patience=100).fit(acts)\n"
             "print('dropped BOS rows:', snmf_paper.n_samples_in_ - len(snmf_paper.fitted_rows_), '| iterations:', snmf_paper.n_iter_)\n"
             "top_paper = top_activating(snmf_paper, acts, n=6, codes='fitted')\n"
             "top_paper['text'] = [tok.decode([int(t)]) for t in top_paper['token']]\n"
             "top_paper.groupby('component')['text'].apply(list).head(12)"),
    ("md", "### Output side: vocabulary projection (`W_out[6]`, then the model's final norm and unembedding)"),
    ("code", "vocab = vocab_projection(model, 6, directions=snmf, k=8)\n"
             "words = vocab.tokens()\n"
             "words[words.side == 'top'].groupby('unit')['token'].apply(list).head(12)"),
    ("md", "### Causal side: steering\nAdd `strength * feature` at `blocks.6.mlp.hook_post` at every position, with the strength "
           "found by the authors' bisection in [1, 2000] (20 steps) so that KL(unsteered || steered) of the next-token distribution after "
           "\"I think that\" is 0.5 nats."),
    ("code", "res = find_strength(model, 'I think that', site, snmf.components_[0], target_kl=0.5, tol=0.01)\n"
             "print(res)\n"
             "print(steered_generate(model, 'I think that', site, snmf.components_[0], res.strength, max_new_tokens=12))"),
    ("md", "### The authors' whole evaluation in one call\n`snmf_evaluation` runs Shafran et al.'s protocol "
           "(`ordavid-s/snmf-mlp-decomposition` ab58c78): the strength bisected in [1, 2000] for each KL target "
           "(theirs: 0.025-0.5), sentences *sampled* with +strength and -strength (TransformerLens's `sample_logits` "
           "with top-k 30; their top-p 0.3 is ignored there when top-k is given), each scored by a judge for concept "
           "and fluency (0-2, harmonic mean) against the feature's description, beside a DiffMeans baseline, plus the "
           "concept-detection score. The judge here is smollm2-135m itself, read in one forward pass: far too small "
           "to judge (it rates everything 0); pass `judge=OpenAIExplainer(...)` for an endpoint such as the "
           "authors' gpt-4o-mini. Settings are cut down to keep the notebook quick."),
    ("code", 'from interp.decompose.steering import diffmeans_directions, snmf_evaluation\n'
             'from interp.label.explain import LocalModelExplainer\n'
             "_, dm = diffmeans_directions(model, site, {'animals': ['The cat chased the dog.', 'A horse ran past the cows.'],\n"
             "                                           'numbers': ['She counted to seven.', 'It costs twelve dollars.']})\n"
             'words_of = lambda d: \', \'.join(vocab_projection(model, 6, directions=d, k=5).tokens().query("side == \'top\'")[\'token\'])\n'
             "descriptions = {'SNMF': [words_of(snmf.components_[0:1])], 'DiffMeans': [words_of(dm[0:1])]}\n"
             "ev = snmf_evaluation(model, site, snmf, baselines={'DiffMeans': dm}, components=[0], target_kls=(0.5,),\n"
             '                     n_samples=2, max_new_tokens=8, judge=LocalModelExplainer(model, tok), descriptions=descriptions,\n'
             "                     concept_texts={0: ['The cat chased the dog.', 'A horse ran past the cows.']},\n"
             "                     neutral_texts=['She counted to seven.', 'It costs twelve dollars.'])\n"
             'print(ev.summary())\n'
             "ev.generations[['method', 'target_kl', 'sign', 'strength', 'sentence', 'concept_score', 'fluency_score', 'score']]"),
    ("md", "### Spliced into the model\nReplace the site by the SAE's reconstruction and measure the next-token loss: "
           "CE loss recovered relative to zero-ablating the site, and KL from the clean model."),
    ("code", "from interp.decompose import spliced_lm_metrics\n"
             "tokens = torch.cat([model.to_tokens(t)[:, :12] for t in texts[:8]])   # 8 contexts of 12 tokens\n"
             "spliced_lm_metrics(sae, model, tokens, site).to_frame()"),
    ("md", "## A brain: NMF on whole-brain calcium imaging of C. elegans\n"
           "NMF on the non-negative F/F20 traces of each of the 7 worms; for each component, its correlation with "
           "reversals and velocity against a circular-shift null (the traces are autocorrelated, so shuffling time "
           "points would be wrong), and the named (NeuroPAL) neurons that load on it most."),
    ("code", "from interp.decompose.recordings import behaviour_components\n"
             "worms = interp.data.load('celegans', trace='F_F20')\n"
             "summary = []\n"
             "for worm in worms:\n"
             "    nmf = NMF(n_components=8).fit(worm)\n"
             "    res = behaviour_components(nmf, worm, variables=('reversal', 'velocity'), n_permutations=500)\n"
             "    best = res.best('reversal')\n"
             "    summary.append({'worm': worm.attrs['worm'], 'component': best['component'], 'r': round(best['r'], 3),\n"
             "                    'p (shift null, best of 8)': best['p_max'], 'top named neurons': ', '.join(best['top_units'])})\n"
             "pd.DataFrame(summary)"),
    ("md", "AVA, AVE, RIM and AIB, the backward-locomotion command and reversal-promoting interneurons, dominate the "
           "reversal component in most worms. The last worm's component/behaviour table:"),
    ("code", "res.plot()"),
    ("code", "res.to_frame().sort_values('p').head(6)"),
    ("md", "SNMF works on the z-scored (mixed-sign) traces directly: features are signed neuron groups, "
           "time courses are non-negative."),
    ("code", "worm = interp.data.load('celegans', worm=0)\n"
             "snmf_worm = SNMF(n_components=8, sparsity=0.2, init='kmeans', max_iter=500, patience=50).fit(worm)\n"
             "behaviour_components(snmf_worm, worm, n_permutations=300).best('reversal')"),
    ("md", "## Save, load, and bad input"),
    ("code", "import tempfile, os\npath = os.path.join(tempfile.mkdtemp(), 'sae.safetensors')\n"
             "sae.save(path)\nagain = interp.decompose.load(path)\n"
             "print(type(again).__name__, torch.equal(again.transform(acts).data, sae.transform(acts).data))\n"
             "for bad in (lambda: NMF(3).fit(worm),                        # z-scored traces are negative\n"
             "            lambda: TopKSAE(n_components=16, k=32).fit(acts)):  # k > latents\n"
             "    try:\n        bad()\n    except interp.InterpError as err:\n        print(type(err).__name__, ':', err)"),
    ("md", "## Shared formats: SAELens, sparsify, Neuronpedia\n"
           "`save_saelens` writes the folder SAELens's `SAE.load_from_disk` reads (`cfg.json` + `sae_weights.safetensors`, "
           "the input scale folded into the weights); `save_sparsify` EleutherAI's layout. `feature_dashboards` builds "
           "each feature's top contexts, density and (on residual-stream SAEs) logit effects, and writes them as a "
           "Neuronpedia upload batch."),
    ("code", "from interp.decompose import save_saelens, load_saelens\n"
             "from interp.label import feature_dashboards\n"
             "folder = save_saelens(sae, os.path.join(tempfile.mkdtemp(), 'sae_lens'), hook_name=site, model_name='smollm2-135m')\n"
             "print(sorted(os.listdir(folder)))\n"
             "back = load_saelens(folder)\n"
             "print('same reconstructions:', torch.allclose(back.reconstruct(acts).data, sae.reconstruct(acts).data, atol=1e-4))\n"
             "dash = feature_dashboards(model, sae, tokens[:16], site, features=range(6), n_top=5, logits=False)\n"
             "dash.to_neuronpedia(os.path.join(tempfile.mkdtemp(), 'batch-0.json'), model_id='smollm2-135m', layer=6,\n"
             "                    sae_set='mlp-topk')\n"
             "dash"),
]
nb = nbf.v4.new_notebook()
nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/03_decompose.ipynb")
