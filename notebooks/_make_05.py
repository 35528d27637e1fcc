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
             "from interp.similarity.compare import expand_sites, random_weights, plot_profiles\n"
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
             "plot_profiles([eff_h, eff_h_rand], ['efficientnet-lite0 (ImageNet)', 'same architecture, random weights'],\n"
             "              title='efficientnet-lite0 vs human IT (Spearman, mean over 8 subject-session RDMs)')"),
    ("code", "d = eff_h.difference(eff_h_rand)   # best trained block - best random block, paired bootstrap\n"
             "print(f\"best trained block {eff_h.best()['site']}: {eff_h.best()['score']:.3f}; \"\n"
             "      f\"best random {eff_h_rand.best()['score']:.3f}; difference {d.estimate:.3f} [{d.low:.3f}, {d.high:.3f}]\")\n"
             "print(f'human noise ceiling: [{eff_h.ceiling.lower:.3f}, {eff_h.ceiling.upper:.3f}]')\n"
             "eff_h.to_frame().round(3)"),
    ("code", "eff_m = interp.compare(acts, None, monkey, model_name='efficientnet-lite0', **kw)\n"
             "eff_m_rand = interp.compare(acts_rand, None, monkey, model_name='random weights', **kw)\n"
             "plot_profiles([eff_m, eff_m_rand], ['efficientnet-lite0', 'random weights'],\n"
             "              title='efficientnet-lite0 vs monkey IT (one RDM: no ceiling; CI over stimuli)')"),
    ("md", "## resnet20-cifar10, stage by stage\nA CIFAR-10 network sees the images at 32 x 32."),
    ("code", "rn, rn_prep = interp.models.load('resnet20-cifar10')\n"
             "rn_sites = ['relu'] + expand_sites(rn, 'layer*.*')\n"
             "rn_acts = interp.capture(rn, list(k92.images), rn_sites, preprocess=rn_prep, sample_ids=ids, progress=False)\n"
             "rn_h = interp.compare(rn_acts, None, human, model_name='resnet20-cifar10', **kw)\n"
             "rn_m = interp.compare(rn_acts, None, monkey, model_name='resnet20-cifar10', **kw)\n"
             "plot_profiles([rn_h, rn_m], ['vs human IT', 'vs monkey IT'], title='resnet20-cifar10 stages')"),
    ("md", "## Beyond RSA: CKA, CCA and shape metrics on patterns\nWith response patterns instead of RDMs, the "
           "pattern measures apply. Here the 'recording' is the last efficientnet block and we ask which resnet20 "
           "stage represents the images most like it (linear CKA, with the unbiased Song estimator too)."),
    ("code", "target = acts['_blocks.15']\nrows = []\nfor site, a in rn_acts.items():\n"
             "    rows.append({'site': site, 'CKA (biased)': sim.cka(a, target), 'CKA (Song, unbiased)': sim.cka(a, target, estimator='song'),\n"
             "                 'Procrustes NBS': sim.procrustes(a, target).nbs})\n"
             "pd.DataFrame(rows).round(3)"),
    ("md", "## Report section\nThe same profiles go into a self-contained HTML report."),
    ("code", "import tempfile, os\nfrom interp.report.html import Report\nfrom interp.similarity.report import add_profile_section\n"
             "rep = Report('efficientnet-lite0 vs Kriegeskorte 2008')\n"
             "add_profile_section(rep, [eff_h, eff_h_rand], ['trained', 'random weights'], title='Human IT')\n"
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
]

nb = nbf.v4.new_notebook()
nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/05_brain_similarity.ipynb")
print("wrote notebooks/05_brain_similarity.ipynb")
