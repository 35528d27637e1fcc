"""Writes notebooks/05_brain_similarity.ipynb (run: python notebooks/_make_05.py)."""

import nbformat as nbf

cells = [
    ("md", "# 05 · Brain similarity: RSA, CKA, noise ceilings and layer profiles\n\n"
           "Kriegeskorte et al. (2008) showed 92 object images to monkeys (IT neurons) and humans (fMRI of IT). "
           "Here we compare the two species, measure how consistent the human subjects are (the noise ceiling), "
           "and score every block of `efficientnet-lite0` (ImageNet) and every stage of `resnet20-cifar10` against "
           "both, with bootstrap confidence intervals and a random-weights control.\n\n"
           "Measures live in `interp.similarity`; fitted read-outs (ridge, probes, encoding, ceilings) in `probes`."),
    ("code", "import numpy as np, pandas as pd, torch\nimport interp\nfrom interp import similarity as sim\n"
             "from interp.similarity import SimilarityProfiles\nfrom interp.similarity.compare import expand_sites, random_weights\n"
             "torch.set_num_threads(1)  # small ops on a shared CPU run faster single-threaded\n\n"
             "k92 = interp.data.load('kriegeskorte92')\n"
             "human = k92.rdms.sel(name='human_IT_s*')   # 4 subjects x 2 sessions, 92 x 92 each\n"
             "monkey = k92.rdms.sel(name='monkey_IT')\n"
             "print(human.coords['rdm'][['name', 'subject', 'session']].to_string(index=False))"),
    ("code", "k92.plot('monkey_IT')"),
    ("md", "## Monkey IT vs human IT\nThe paper's headline: the two species' IT RDMs match (Spearman about 0.44). "
           "A stimulus-label permutation test gives the null, a stimulus bootstrap the CI."),
    ("code", "m, h = k92.rdm('monkey_IT'), k92.rdm('human_IT')\n"
             "print('Spearman', round(sim.compare_rdms(m, h, 'spearman'), 4))\n"
             "perm = sim.permutation_test(m, h, 'spearman', n_permutations=500)\n"
             "boot = sim.rdm_bootstrap(m, h, 'spearman', over='stimuli', n_bootstraps=300)\n"
             "print(f'p = {perm.p_value:.4f} (null mean {perm.null.mean():+.4f}); 95% CI [{boot.low:.3f}, {boot.high:.3f}]')"),
    ("md", "## Comparators and ties\nRank comparators handle monotone RDM transforms; τa and ρa do not reward tied "
           "(categorical) model RDMs, so **τa(x, x) < 1 for a tied x**. Compare the continuous monkey RDM and the "
           "categorical animacy model against the human subjects (mean over the 8 RDMs):"),
    ("code", "models = {'monkey IT': m, 'animacy model': k92.rdm('model_animacy')}\n"
             "rows = []\nfor name, rdm_ in models.items():\n"
             "    for method in ['pearson', 'spearman', 'rho-a', 'tau-a', 'whitened_cosine']:\n"
             "        scores = sim.compare_rdms(rdm_, human.data, method)\n"
             "        rows.append({'model': name, 'method': method, 'score': float(scores.mean())})\n"
             "pd.DataFrame(rows).pivot(index='method', columns='model', values='score').round(4)"),
    ("code", "a = k92.rdm('model_animacy')\n"
             "{m_: round(sim.compare_rdms(a, a, m_), 4) for m_ in ['spearman', 'rho-a', 'tau-a']}"),
    ("md", "## Noise ceiling of human IT\nrsatoolbox's bounds: upper = mean similarity of each subject RDM to the "
           "pooled RDM of all subjects; lower = the same with that subject left out. A model in the band is as good "
           "as the data allow."),
    ("code", "pd.DataFrame([{'method': m_, **{k: getattr(sim.rsa_noise_ceiling(human.data, m_), k) for k in ('lower', 'upper')}}\n"
             "              for m_ in ['pearson', 'spearman', 'rho-a', 'tau-a', 'whitened_cosine']]).round(4)"),
    ("md", "## efficientnet-lite0, block by block\nCapture the 16 MBConv blocks once (trained and random weights), "
           "then compare the same activations with human and monkey IT. `interp.compare` accepts a model or "
           "precomputed `{site: Activations}`; stimuli are matched by id."),
    ("code", "model, prep = interp.models.load('efficientnet-lite0')\n"
             "sites = expand_sites(model, '_blocks.*')\nids = k92.stimuli['stimulus'].tolist()\n"
             "acts = interp.capture(model, list(k92.images), sites, preprocess=prep, sample_ids=ids, progress=False)\n"
             "acts_rand = interp.capture(random_weights(model, seed=0), list(k92.images), sites, preprocess=prep,\n"
             "                           sample_ids=ids, progress=False)\n"
             "kw = dict(method='rsa:spearman', n_bootstraps=300, seed=0, progress=False)\n"
             "eff_h = interp.compare(acts, None, human, model_name='efficientnet-lite0', **kw)\n"
             "eff_h_rand = interp.compare(acts_rand, None, human, model_name='random weights', **kw)\n"
             "eff_h_both = SimilarityProfiles([eff_h, eff_h_rand], ['efficientnet-lite0 (ImageNet)', 'same architecture, random weights'])\n"
             "print(eff_h_both.summary())\n"
             "eff_h_both.plot(title='efficientnet-lite0 vs human IT (Spearman, mean over 8 subject-session RDMs)')"),
    ("code", "d = eff_h.difference(eff_h_rand)   # best trained block - best random block, paired bootstrap\n"
             "print(f\"best trained block {eff_h.best()['site']}: {eff_h.best()['score']:.3f}; \"\n"
             "      f\"best random {eff_h_rand.best()['score']:.3f}; difference {d.estimate:.3f} [{d.low:.3f}, {d.high:.3f}]\")\n"
             "print(f'human noise ceiling: [{eff_h.ceiling.lower:.3f}, {eff_h.ceiling.upper:.3f}]')\n"
             "eff_h.to_frame().round(3)"),
    ("code", "eff_m = interp.compare(acts, None, monkey, model_name='efficientnet-lite0', **kw)\n"
             "eff_m_rand = interp.compare(acts_rand, None, monkey, model_name='random weights', **kw)\n"
             "SimilarityProfiles([eff_m, eff_m_rand], ['efficientnet-lite0', 'random weights']).plot(\n"
             "    title='efficientnet-lite0 vs monkey IT (one RDM: no ceiling; CI over stimuli)')"),
    ("md", "## resnet20-cifar10, stage by stage\nA CIFAR-10 network sees the images at 32 x 32."),
    ("code", "rn, rn_prep = interp.models.load('resnet20-cifar10')\n"
             "rn_sites = ['relu'] + expand_sites(rn, 'layer*.*')\n"
             "rn_acts = interp.capture(rn, list(k92.images), rn_sites, preprocess=rn_prep, sample_ids=ids, progress=False)\n"
             "rn_h = interp.compare(rn_acts, None, human, model_name='resnet20-cifar10', **kw)\n"
             "rn_m = interp.compare(rn_acts, None, monkey, model_name='resnet20-cifar10', **kw)\n"
             "SimilarityProfiles([rn_h, rn_m], ['vs human IT', 'vs monkey IT']).plot(title='resnet20-cifar10 stages')"),
    ("md", "## Beyond RSA: CKA, CCA and shape metrics on patterns\nWith response patterns instead of RDMs, the "
           "pattern measures apply. Here the 'recording' is the last efficientnet block and we ask which resnet20 "
           "stage represents the images most like it (linear CKA, with the unbiased Song estimator too)."),
    ("code", "target = acts['_blocks.15']\nrows = []\nfor site, a in rn_acts.items():\n"
             "    rows.append({'site': site, 'CKA (biased)': sim.cka(a, target), 'CKA (Song, unbiased)': sim.cka(a, target, estimator='song'),\n"
             "                 'Procrustes NBS': sim.procrustes(a, target).nbs})\n"
             "pd.DataFrame(rows).round(3)"),
    ("md", "## Report section\nAny result goes into a self-contained HTML report with `Report(...).add(result)`."),
    ("code", "import tempfile, os\nfrom interp.report.html import Report\n"
             "rep = Report('efficientnet-lite0 vs Kriegeskorte 2008')\n"
             "rep.add(SimilarityProfiles([eff_h, eff_h_rand], ['trained', 'random weights']), title='Human IT')\n"
             "path = rep.write(os.path.join(tempfile.mkdtemp(), 'k92.html'))\nprint(path, os.path.getsize(path) // 1024, 'KiB')"),
    ("md", "## Probes: encoding models and selectivity\n`probes.RidgeCV` chooses α per target by cross-validation "
           "(one SVD per fold, or one eigendecomposition of the kernel when samples < features); `encoding_scores` "
           "gives the held-out Pearson r per target. Here spatially pooled block-13 features predict the four category "
           "indicators, and a logistic probe decodes animacy, scored against a control task (Hewitt & Liang 2019)."),
    ("code", "import probes\nX = acts['_blocks.13'].mean(('height', 'width')).matrix('sample').double().numpy()\n"
             "Y = pd.get_dummies(k92.stimuli['category4']).to_numpy(float)\n"
             "from sklearn.model_selection import KFold\n"
             "folds = KFold(4, shuffle=True, random_state=0)  # the 92 images are sorted by category: shuffle the folds\n"
             "enc = probes.encoding_scores(X, Y, alphas=np.logspace(-1, 5, 7), cv=folds, inner_cv=folds)\n"
             "print(dict(zip(sorted(k92.stimuli['category4'].unique()), enc.scores.round(3))))\n"
             "animate = k92.stimuli['animate'].to_numpy().astype(int)\n"
             "sel = probes.probe_selectivity(X, animate, probe='logistic', cv=folds, C=0.1)\n"
             "sel.to_frame().round(3)"),
    ("md", "## Time-resolved similarity: which layer does the brain look like, and when?\n"
           "EEG and MEG record patterns over time, shaped `(sample, time, channel)`. `sliding_rsa` compares the "
           "recording's RDM in every time window with each model RDM (Cichy et al. 2014); the test permutes the "
           "stimulus labels of the model RDMs (the same permutation at every time, so the recording's autocorrelation "
           "is kept) and finds clusters over time (Maris & Oostenveld 2007, `interp.stats.clusters`).\n\n"
           "A planted example first: a synthetic 32-channel recording of the 92 images (two repetitions) whose "
           "channels carry the geometry of block 1 (pooled over space) at 50-200 ms and that of block 15 at "
           "200-400 ms, an early-to-late sequence like the one MEG shows along the ventral stream."),
    ("code", "from interp.similarity import sliding_rsa, cross_temporal_rsa\n"
             "layers = ['_blocks.1', '_blocks.15']\n"
             "pooled = {s: acts[s].mean(('height', 'width')).matrix('sample').double().numpy() for s in layers}\n"
             "rng = np.random.default_rng(0)\n"
             "times = np.round(np.arange(-0.1, 0.5, 0.01), 2)\n"
             "signal = np.zeros((92, len(times), 32))\n"
             "for site, (a, b) in zip(layers, [(0.05, 0.2), (0.2, 0.4)]):\n"
             "    z = (pooled[site] - pooled[site].mean(0)) / (pooled[site].std(0) + 1e-9)\n"
             "    signal[:, (times >= a) & (times < b)] += (z @ rng.normal(size=(z.shape[1], 32)) / np.sqrt(z.shape[1]))[:, None]\n"
             "eeg = np.concatenate([signal + rng.normal(size=signal.shape) for _ in range(2)])\n"
             "rec = interp.Activations(torch.from_numpy(eeg), ('sample', 'time', 'unit'),\n"
             "                         {'sample': {'stimulus': ids * 2, 'rep': np.repeat([0, 1], 92)}, 'time': {'time': times}})\n"
             "tc = sliding_rsa(pooled, rec, window=3, step=3, conditions='stimulus', n_permutations=200, seed=0)\n"
             "print(tc.summary())\ntc.plot()"),
    ("md", "The two blocks share part of their geometry (RSA about 0.3), so each also scores outside its own "
           "window; the best block in each window with a significant cluster (`tc.best()`) follows the plant. "
           "Cross-temporal RSA compares the RDM at every time of one half of the trials with every time of the "
           "other half: a square block on the diagonal means a stable geometry, off-diagonal cells a geometry "
           "that recurs."),
    ("code", "significant = tc.to_frame().groupby('time')['significant'].any().to_numpy()\n"
             "print({round(t, 2): block for t, block in tc.best()[significant].items()})\n"
             "halves = [rec.isel(sample=rec.coord('rep') == r) for r in (0, 1)]\n"
             "tg = cross_temporal_rsa(halves[0], halves[1], window=3, step=3, conditions='stimulus', n_permutations=100)\n"
             "tg.plot()"),
    ("md", "### Convergence scores (Raugel et al. 2025)\n"
           "Raugel et al. score how a vision model lines up with the brain in time and in space: the **temporal "
           "score** correlates each layer's depth with the time at which its encoding of MEG peaks (their R = 0.96), "
           "the **spatial score** correlates each region's place in the cortical hierarchy with the layer that "
           "predicts it best (their R = 0.38); `probes.temporal_score` and `probes.spatial_score` add a permutation "
           "p-value (exact here: 4! orders). No bundled recording has MEG latencies or several visual areas, so both "
           "run on **planted** data built from efficientnet-lite0's responses to the 92 images: 32 'sensors' whose "
           "response to block b's features peaks at a latency that grows with depth, and four 'regions' each driven by "
           "one block. The scores recover the plant; on real data they are what the recording says."),
    ("code", 'from probes import spatial_score, temporal_score\n'
             "blocks = ['_blocks.1', '_blocks.5', '_blocks.10', '_blocks.15']\n"
             'feats = {}\n'
             "for s in blocks:   # 10 principal components of each block's spatially pooled features\n"
             "    f = acts[s].mean(('height', 'width')).matrix('sample').double().numpy()\n"
             '    f = f - f.mean(0)\n'
             '    f = f @ np.linalg.svd(f, full_matrices=False)[2][:10].T\n'
             '    feats[s] = f / f.std(0)\n'
             "rng = np.random.default_rng(1)   # planted: block b drives 32 'sensors' with a response peaking at its latency\n"
             "latency = {'_blocks.1': 0.10, '_blocks.5': 0.15, '_blocks.10': 0.20, '_blocks.15': 0.30}\n"
             'meg = rng.normal(size=(92, len(times), 32))\n'
             'for s, lat in latency.items():\n'
             '    meg += np.exp(-((times - lat) / 0.03) ** 2)[None, :, None] * (feats[s] @ rng.normal(size=(10, 32)) / np.sqrt(10))[:, None]\n'
             "meg_rec = interp.Activations(torch.from_numpy(meg), ('sample', 'time', 'unit'), {'sample': {'stimulus': ids}, 'time': {'time': times}})\n"
             'enc_tc = probes.temporal_encoding(feats, meg_rec, window=2, step=2, cv=folds, inner_cv=folds, alphas=np.logspace(-1, 4, 6))\n'
             'ts = temporal_score(enc_tc)\n'
             'print(ts.summary())\n'
             'print(ts.to_frame().round(3).to_string(index=False))'),
    ("code", 'rng = np.random.default_rng(2)\n'
             "region_of = {'V1': '_blocks.1', 'V2': '_blocks.5', 'V4': '_blocks.10', 'IT': '_blocks.15'}\n"
             'voxels = {r: feats[b] @ rng.normal(size=(10, 8)) + 3 * rng.normal(size=(92, 8)) for r, b in region_of.items()}\n'
             'region_scores = pd.DataFrame({r: [probes.encoding_scores(feats[b], Y, alphas=np.logspace(-1, 4, 6), cv=folds,\n'
             '                                                         inner_cv=folds).scores.mean() for b in blocks]\n'
             '                              for r, Y in voxels.items()}, index=blocks)\n'
             "ss = spatial_score(region_scores, {'V1': 0, 'V2': 1, 'V4': 2, 'IT': 3})\n"
             'print(ss.summary())\n'
             'print(region_scores.round(3))'),
    ("md", "### Real EEG: the cluster test and session-grouped encoding on EEGMMIDB\n"
           "64-channel EEG of subject 1, 45 left- or right-fist trials in 3 runs (1-20 Hz, baseline-corrected, "
           "50 ms bins). The one-sample cluster test over trials finds the visual response to the cue at Oz. "
           "`probes.temporal_encoding` then asks, window by window, whether the fist (left = +1, right = -1) "
           "predicts the channels on held-out **runs** (`groups='run'`: the folds never split a run). Whatever "
           "it finds is shown; with one binary feature and 45 trials, a held-out r a little below 0 is the known "
           "bias of cross-validated correlation under the null."),
    ("code", "import probes\nfrom interp.stats.clusters import cluster_permutation_test\n"
             "raw = interp.data.load('eegmmidb', task='executed', tmin=-0.5, tmax=2.5, l_freq=1.0, h_freq=20.0, baseline=(None, 0))\n"
             "x = torch.nn.functional.avg_pool1d(raw.data.double().permute(0, 2, 1), 8, 8).permute(0, 2, 1) * 1e6  # µV, 50 ms bins\n"
             "bins = raw.coord('time')[::8][:x.shape[1]] + 0.025\n"
             "erp = interp.Activations(x, ('sample', 'time', 'unit'), {'sample': raw.coords['sample'], 'time': {'time': bins},\n"
             "                                                          'unit': raw.coords['unit']})\n"
             "oz = erp.isel(unit=list(erp.coord('name')).index('Oz'))   # (sample, time)\n"
             "cl = cluster_permutation_test(oz, n_permutations=1000, alternative='two-sided')\n"
             "print(cl.summary())\ncl.plot(title='Oz, 45 trials: one-sample cluster test against 0 µV')"),
    ("code", "fist = np.where(raw.coord('condition') == 'left', 1.0, -1.0)[:, None]\n"
             "enc_t = probes.temporal_encoding({'left vs right fist': fist}, erp, window=4, step=4, groups='run', cv=3,\n"
             "                                 inner_cv=2, alphas=np.logspace(-2, 4, 7))\n"
             "print(enc_t.summary())\nenc_t.plot()"),
    ("md", "## Lagged (FIR) and HRF encoding for slow signals\n"
           "fMRI follows its stimulus by seconds. A simulated experiment: 3 runs of 150 volumes (TR 2 s), a random "
           "image of the 92 every volume with probability 0.3; each of 20 'voxels' sums five image features "
           "(the first principal components of block 13) convolved with SPM's canonical HRF. A finite impulse "
           "response model (`probes.lagged_encoding`: the features at lags 0-9 volumes, ridge, runs as groups) "
           "recovers the response kernel without being told its shape."),
    ("code", "feat = acts['_blocks.13'].mean(('height', 'width')).matrix('sample').double().numpy()\n"
             "feat = feat - feat.mean(0)\nfeat = feat @ np.linalg.svd(feat, full_matrices=False)[2][:5].T\n"
             "feat = feat / feat.std(0)\nrng = np.random.default_rng(1)\n"
             "shown = np.where(rng.random(450) < 0.3, rng.integers(0, 92, 450), -1)\n"
             "events = np.where(shown[:, None] >= 0, feat[np.maximum(shown, 0)], 0.0)\n"
             "runs = np.repeat([1, 2, 3], 150)\n"
             "bold = probes.hrf_features(events, dt=2.0, groups=runs) @ rng.normal(size=(5, 20)) + 0.3 * rng.normal(size=(450, 20))\n"
             "fir = probes.lagged_encoding(events, bold, lags=range(10), dt=2.0, groups=runs, cv=3, inner_cv=2,\n"
             "                             alphas=np.logspace(-2, 4, 7))\n"
             "print(fir.summary())\nfig = fir.plot()\n"
             "hrf = probes.canonical_hrf(2.0)[:10]\n"
             "fig.add_scatter(x=np.arange(10) * 2.0, y=hrf / hrf.max() * fir.energy.max(), mode='lines',\n"
             "                line=dict(dash='dash', color='black'), name='canonical HRF (scaled)')\nfig"),
    ("md", "## Feature spaces: which part of a response does each space explain?\n"
           "`probes.variance_partitioning` fits banded ridge (one regularisation per feature space, himalaya's "
           "random search) on every subset of 2-3 spaces and splits the held-out R² into unique and shared parts. "
           "Here the 'recording' is the last stage of resnet20 (64 pooled channels) and the spaces are "
           "efficientnet's block 6 and 12 SNMF latents of its block 13."),
    ("code", "from interp.decompose import SNMF\nfrom sklearn.model_selection import KFold\n"
             "b13 = acts['_blocks.13'].mean(('height', 'width'))\n"
             "snmf = SNMF(n_components=12, sparsity=None).fit(b13)\n"
             "spaces = {'block 6': acts['_blocks.6'].mean(('height', 'width')), 'block 13 SNMF latents': snmf.transform(b13)}\n"
             "target = rn_acts['layer3.2'].mean(('height', 'width'))\n"
             "folds = KFold(4, shuffle=True, random_state=0)\n"
             "vp = probes.variance_partitioning(spaces, target, alphas=np.logspace(-1, 5, 7), cv=folds, inner_cv=folds, n_iter=10)\n"
             "print(vp.summary())\nvp.plot()"),
    ("md", "## Causal brain alignment: which components carry the IT-likeness?\n"
           "Similarity says *where* a model looks like the brain; ablation says *what it depends on*. "
           "`patching.alignment.brain_alignment` mean-ablates a component (channels, heads, SAE latents), reads the "
           "model out at its most IT-like block and scores it against the 8 human IT RDMs; the bootstrap resamples "
           "images and recomputes intact and ablated scores on the same resample, so the CI is that of the "
           "difference. `k92_it_alignment` does it twice: a random half of each block's expanded channels, then 4 "
           "channel groups in the two blocks whose half mattered most (about 100 s of CPU). Blocks before the ablated one are replayed, "
           "not recomputed. Whatever it finds is shown, including ablations that *raise* the similarity."),
    ("code", "from patching.alignment import k92_it_alignment\n"
             "readout = eff_h.best()['site']\n"
             "align = k92_it_alignment(model=model, preprocess=prep, readout=readout, n_bootstraps=300)\n"
             "print(align['blocks'].summary())\nalign['blocks'].plot(title=f'half of each block ablated, read out at {readout}')"),
    ("code", "print(align['channels'].summary())\nalign['channels'].plot()"),
]

nb = nbf.v4.new_notebook()
nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/05_brain_similarity.ipynb")
print("wrote notebooks/05_brain_similarity.ipynb")
