"""Writes notebooks/07_your_recording.ipynb (run: python notebooks/_make_07.py)."""

import nbformat as nbf

cells = [
    ("md", "# 07 · Your own recording: load it, check it, label it, find its assemblies\n\n"
           "A lab's data rarely arrive as a library's bundled set. This notebook writes the kinds of files labs "
           "share -- a MATLAB matrix of dF/F traces with a time vector and cell positions, a MATLAB struct array "
           "with one element per trial, an NWB file with a trials table, an xarray -- and brings each in as an "
           "`interp.Activations` with `interp.data`. It labels the units of a realistic session (ragged trials with gaps, "
           "float-coded targets, a 2-D velocity, repeated unit names) with labels you can trust. Then it finds neural assemblies (groups of co-active cells) "
           "with `interp.decompose.find_assemblies` and checks them against the ground truth that was planted.\n\n"
           "Everything runs offline on files written here, in a temporary folder."),
    ("code", "import os, tempfile\nimport numpy as np, pandas as pd, torch\nfrom scipy.io import savemat\n"
             "import interp\nfrom interp.decompose import find_assemblies, match_assemblies, planted_assemblies\n"
             "torch.set_num_threads(1)\n"
             "folder = tempfile.mkdtemp()\npath = lambda name: os.path.join(folder, name)\n\n"
             "# synthetic calcium imaging: 60 cells, 3000 frames at 10 Hz, 4 planted spatially compact assemblies\n"
             "planted = planted_assemblies(n_units=60, n_samples=3000, n_assemblies=4, size=8, seed=0)\n"
             "truth = planted.recording\n"
             "dff = truth.numpy().T                       # as a lab stores it: cells x frames\n"
             "xy = np.c_[truth.coord('x'), truth.coord('y')]\n"
             "savemat(path('session.mat'), {'dff': dff, 't': truth.coord('time'), 'xy': xy,\n"
             "                              'spikes': (dff > 1).astype(np.uint8)})\n"
             "interp.data.mat_variables(path('session.mat'))"),
    ("md", "## A MATLAB matrix\n`load_mat` reads v5 files with `scipy.io` and v7.3 (HDF5) files with `h5py`; the call "
           "is the same. Name the axes in MATLAB's order (`size(dff)` is cells x frames, so `dims=('unit', 'time')`); "
           "`time` and `coords` take variable names or arrays. The result is always `(sample, ..., unit)`."),
    ("code", "xy = interp.data.read_mat(path('session.mat'), 'xy')['xy']     # any variable as plain numpy\n"
             "rec = interp.data.load_mat(path('session.mat'), 'dff', dims=('unit', 'time'), time='t',\n"
             "                           coords={'unit': {'x': xy[:, 0], 'y': xy[:, 1]}})\n"
             "print(rec)\nprint('dt =', rec.attrs['dt'], 's;', 'values equal the file:', np.array_equal(rec.numpy(), dff.T))"),
    ("md", "### Checks at the boundary\nA cells x frames matrix read with guessed axes would be 60 samples of 3,000 "
           "'units'; a time vector as long as the wrong axis means the matrix is transposed; integer counts are cast "
           "to float32 (exactly) rather than left as `uint8`. The first two raise `RecordingShapeError`, an "
           "`InterpError` whose message says what to pass."),
    ("code", "for attempt in (lambda: interp.data.load_mat(path('session.mat'), 'dff'),\n"
             "                lambda: interp.data.load_mat(path('session.mat'), 'dff', dims=('sample', 'unit'), time='t'),\n"
             "                lambda: interp.data.from_numpy(dff)):\n"
             "    try:\n        attempt()\n    except interp.InterpError as err:\n"
             "        print(type(err).__name__, ':', err, '\\n')\n"
             "counts = interp.data.load_mat(path('session.mat'), 'spikes', dims=('unit', 'time'))\n"
             "print(counts.dtype, counts.attrs['original_dtype'])"),
    ("md", "## Trials\nA trial axis becomes the sample axis with a `trial` coordinate; a time series cut into trials "
           "carries per-sample trial ids (`trial=`). Trial-aware statistics group on that coordinate. In MATLAB, "
           "trials often come as a struct array (`trials(i).rates`, `trials(i).target`): `field=` names the data, "
           "every scalar field becomes a sample coordinate, equal-length trials are stacked, ragged ones concatenated."),
    ("code", "rng = np.random.default_rng(1)\n"
             "def trial(i, n):\n"
             "    return {'rates': rng.poisson(3, size=(n, 12)).astype(float), 'target': float(i % 8 + 1),\n"
             "            'condition': 'left' if i % 2 else 'right', 't': np.arange(n) * 0.02}\n"
             "def struct_array(items):\n"
             "    arr = np.zeros((1, len(items)), dtype=[(k, 'O') for k in items[0]])\n"
             "    for i, item in enumerate(items):\n"
             "        for k, v in item.items():\n"
             "            arr[0, i][k] = v\n"
             "    return arr\n"
             "savemat(path('reach.mat'), {'trials': struct_array([trial(i, 50) for i in range(16)]),\n"
             "                            'ragged': struct_array([trial(i, 40 + 5 * (i % 3)) for i in range(6)])})\n"
             "reach = interp.data.load_mat(path('reach.mat'), 'trials', field='rates', dims=('time', 'unit'), time='t')\n"
             "print(reach)\nreach.coords['sample'].head()"),
    ("code", "ragged = interp.data.load_mat(path('reach.mat'), 'ragged', field='rates', dims=('time', 'unit'), time='t')\n"
             "print(ragged)\n"
             "ragged.coords['sample'].groupby('trial').agg(n=('time', 'size'), target=('target', 'first'))"),
    ("code", "cube = interp.data.from_numpy(rng.random((12, 30, 20)), dims=('unit', 'time', 'trial'),\n"
             "                              time=np.arange(30) * 0.05)     # MATLAB-style units x time x trials\n"
             "print(cube, cube.coord('trial')[:5])"),
    ("md", "## NWB and xarray\n`load_nwb` reads a time series or the units table. With a trials table the recording is "
           "restricted to the trials: each sample inside one gets its `trial` and the table's columns, samples between "
           "trials are excluded (`attrs['intervals']` counts them; `intervals=None` keeps them all, without trial "
           "columns). Imaging series get ROI centroids `x`, `y`."),
    ("code", "from datetime import datetime, timezone\n"
             "from pynwb import NWBHDF5IO, NWBFile\n"
             "from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel, RoiResponseSeries\n"
             "nwb = NWBFile(session_description='demo', identifier='demo', session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))\n"
             "plane = nwb.create_imaging_plane(name='plane', optical_channel=OpticalChannel(name='g', description='g', emission_lambda=520.0),\n"
             "                                 description='tectum', device=nwb.create_device(name='scope'), excitation_lambda=920.0,\n"
             "                                 imaging_rate=10.0, indicator='GCaMP6s', location='tectum')\n"
             "seg = ImageSegmentation()\nrois = seg.create_plane_segmentation(name='rois', description='cells', imaging_plane=plane)\n"
             "for x, y in xy.astype(int):\n"
             "    mask = np.zeros((210, 210)); mask[x:x + 3, y:y + 3] = 1; rois.add_roi(image_mask=mask)\n"
             "ophys = nwb.create_processing_module(name='ophys', description='imaging'); ophys.add(seg)\n"
             "region = rois.create_roi_table_region(region=list(range(60)), description='all cells')\n"
             "ophys.add(Fluorescence(roi_response_series=RoiResponseSeries(name='dff', data=dff.T, rois=region, unit='dF/F', rate=10.0)))\n"
             "nwb.add_trial_column(name='stimulus', description='visual stimulus')\n"
             "for k, start in enumerate(range(10, 290, 40)):\n"
             "    nwb.add_trial(start_time=float(start), stop_time=float(start + 20), stimulus=['dot', 'grating'][k % 2])\n"
             "with NWBHDF5IO(path('session.nwb'), 'w') as io:\n    io.write(nwb)\n"
             "from_nwb = interp.data.load_nwb(path('session.nwb'), series='dff')\n"
             "print(from_nwb, from_nwb.attrs['intervals'])\nfrom_nwb.coords['sample'].iloc[195:205]"),
    ("code", "import xarray as xr\n"
             "da = xr.DataArray(dff, dims=('cell', 'frame'), coords={'frame': truth.coord('time'), 'cell': truth.coord('name')})\n"
             "interp.data.from_xarray(da, dims={'cell': 'unit', 'frame': 'time'})"),
    ("md", "## Labels you can trust on a realistic session\n"
           "What labs actually have: trials of different lengths with gaps between them, reach targets stored as "
           "doubles (MATLAB exports, NWB trial columns), a hand velocity with two columns, and units named by the lab "
           "-- several multi-unit clusters all called `mua`. `label_recordings` keeps each unit's own index and name, "
           "refuses repeated names unless told how to tell them apart, infers each annotation's kind from its values "
           "(whole-number floats with few levels are categories; two columns are a direction) and says why, and "
           "refuses missing values unless asked to drop them. The trials are an `IntervalSet`; `restrict` keeps the "
           "samples inside them."),
    ("code", "from interp.label import label_recordings\n"
             "rng = np.random.default_rng(7)\n"
             "n_trials, bin_s = 32, 0.05\n"
             "starts = np.cumsum(rng.uniform(2.0, 2.6, n_trials))\n"
             "trials = interp.data.IntervalSet(starts, starts + rng.uniform(1.0, 1.6, n_trials),\n"
             "                                 labels={'target': np.tile([1.0, 2.0, 3.0, 4.0], n_trials // 4)})\n"
             "time = np.arange(int((starts[-1] + 3) / bin_s)) * bin_s\n"
             "which = trials.index_of(time)\n"
             "target = np.where(which >= 0, trials.labels['target'].to_numpy()[np.clip(which, 0, None)], np.nan)\n"
             "theta = np.cumsum(rng.normal(0, 0.2, len(time)))                 # the hand turns smoothly\n"
             "velocity = np.c_[np.cos(theta), np.sin(theta)]\n"
             "names = ['M1-03', 'M1-07', 'mua', 'M1-12', 'mua', 'mua', 'M1-20', 'M1-21']\n"
             "rate = np.full((len(time), len(names)), 0.5)\n"
             "rate[:, 1] += 1.5 * (target == 3.0)                              # M1-07: target 3\n"
             "rate[:, 6] *= np.exp(0.8 * np.cos(theta - np.pi / 2))             # M1-20: moving up (90 degrees)\n"
             "counts = rng.poisson(rate).astype(float)\n"
             "rec = interp.data.from_numpy(counts, time=time, coords={'sample': {'velocity': list(velocity)},\n"
             "                                                        'unit': {'name': names}})\n"
             "session = interp.data.restrict(rec, trials)\n"
             "print(session, session.attrs['intervals'])"),
    ("code", "try:\n    label_recordings(session, ['target'], groups='trial')\n"
             "except interp.InterpError as err:\n    print(type(err).__name__, ':', err)"),
    ("code", "by_target = label_recordings(session, ['target'], groups='trial', unit_names='suffix', n_permutations=1000)\n"
             "print(by_target.notes[1])\n"
             "by_target.to_frame()[['unit', 'name', 'label', 'score', 'score_kind', 'chance']]"),
    ("md", "The velocity changes within trials of different lengths, so whole trials cannot be swapped sample by "
           "sample; the null shifts it circularly within each trial instead (`null='circular'`)."),
    ("code", "by_direction = label_recordings(session, ['velocity'], groups='trial', null='circular', unit_names='suffix',\n"
             "                                n_permutations=1000)\n"
             "by_direction.to_frame()[['unit', 'name', 'label', 'score']]"),
    ("md", "Missing values are never a category: the target between trials is NaN, which is an error on the whole "
           "recording unless those samples are dropped."),
    ("code", "gappy = rec.replace(coords={**rec.coords, 'sample': rec.coords['sample'].assign(target=target)})\n"
             "try:\n    label_recordings(gappy, ['target'], unit_names='suffix')\n"
             "except interp.InterpError as err:\n    print(type(err).__name__, ':', err)"),
    ("md", "### Peri-event epochs, spike times, suite2p and the command line\n`epochs` cuts a window around each event "
           "into `(sample=trial, time, unit)` with an optional baseline (like MNE's `Epochs`); `from_spike_times` "
           "bins spike times; `load_suite2p` reads a suite2p plane folder and `load_phy` a Kilosort/phy folder (with "
           "each cluster's quality). The same files go through `interp label` with `--behavior`, `--groups`, "
           "`--unit-names`, `--kinds`, `--intervals` and `--nan-policy`."),
    ("code", "events = pd.DataFrame({'time': trials.start, 'target': trials.labels['target']})\n"
             "peri = interp.data.epochs(rec, events, window=(-0.5, 1.0), baseline=(-0.5, 0.0))\n"
             "print(peri)\n"
             "psth = peri.numpy()[peri.coord('target') == 3.0].mean(0)[:, 1]\n"
             "print('M1-07, target 3: mean change after the trial start', round(float(psth[peri.coord('time', 'time') > 0].mean()), 2))\n"
             "spikes = [np.sort(rng.uniform(0, 10, 40)), np.sort(rng.uniform(0, 10, 5))]\n"
             "interp.data.from_spike_times(spikes, bin_size=0.5, names=['good_1', 'mua_2'],\n"
             "                             unit_coords={'quality': ['good', 'mua']})"),
    ("code", "import subprocess, sys\n"
             "session.save(path('session.safetensors'))\n"
             "out = subprocess.run([sys.executable, '-m', 'interp', 'label', path('session.safetensors'), '--annotations', 'target',\n"
             "                      '--groups', 'trial', '--unit-names', 'suffix', '--n-permutations', '500', '--quiet',\n"
             "                      '--out', path('units.html'), '--csv', path('units.csv')], capture_output=True, text=True)\n"
             "print(out.stdout[-600:], out.stderr[-600:])\n"
             "pd.read_csv(path('units.csv'))[['unit', 'name', 'label']]"),
    ("md", "## Your lab's data sets by name\n`interp.data.register(name, loader)` makes `interp.data.load(name)` work for "
           "your own loader (a callable, or a `'package.module:function'` string imported on first use)."),
    ("code", "def tectum_session(fish=0):\n"
             "    return interp.data.load_mat(path('session.mat'), 'dff', dims=('unit', 'time'), time='t',\n"
             "                                coords={'unit': {'x': xy[:, 0], 'y': xy[:, 1]}}, attrs={'fish': fish})\n"
             "interp.data.register('tectum', tectum_session, overwrite=True)\n"
             "print(interp.data.available())\nrec = interp.data.load('tectum', fish=3)\nrec.attrs['fish']"),
    ("md", "## Neural assemblies\n`find_assemblies` (Lopes-dos-Santos, Ribeiro & Tort 2013): the number of assemblies "
           "is the count of correlation eigenvalues above a noise bound -- by default the 95% quantile of the largest "
           "eigenvalue when every cell is circularly shifted in time, which keeps each cell's calcium "
           "autocorrelation. NMF (default) or ICA gives each assembly's loadings; members pass Otsu's threshold; "
           "each assembly's strength is tested against the shifted surrogates. Negative dF/F is clipped to zero for "
           "NMF (`negative='clip'`; `'shift'` or `'raise'` on request). With cell positions, each assembly's "
           "spatial extent is compared with random cell sets of the same size."),
    ("code", "found = find_assemblies(rec, method='nmf', seed=0)\nprint(found.summary())\nfound.to_frame()"),
    ("code", "found.plot()"),
    ("md", "The Marchenko-Pastur bound assumes independent time points; calcium traces are not, so it lets noise "
           "eigenvalues through (the plot's lower dashed line). `n_assemblies='marchenko-pastur'` uses it anyway:"),
    ("code", "mp = find_assemblies(rec, n_assemblies='marchenko-pastur', n_permutations=50)\n"
             "mp.to_frame()[['assembly', 'n_members', 'strength', 'p_value', 'significant']]"),
    ("md", "### Against the planted truth\n`match_assemblies` pairs found and reference assemblies one-to-one "
           "(Hungarian algorithm on the AUC of each found loading vector for each reference's members), so two "
           "references never share a component. The same call takes published assemblies as lists of 0-based cell "
           "indices."),
    ("code", "match = match_assemblies(found, planted.members)\nprint(match.summary())\nmatch.to_frame()"),
    ("code", "ica = find_assemblies(rec, method='ica', seed=0)\n"
             "print(match_assemblies(ica, planted.members).summary())\n"
             "shifted = find_assemblies(rec, negative='shift', seed=0)\n"
             "print(match_assemblies(shifted, planted.members).summary())"),
    ("md", "### When each assembly fires\n`found.activations` is an `Activations` `(sample=time, unit=assembly)` "
           "carrying the recording's time coordinate; it peaks at the planted events."),
    ("code", "import plotly.graph_objects as go\n"
             "acts = found.activations\nwindow = slice(0, 600)\nfig = go.Figure()\n"
             "for ref, j in match.pairs:\n"
             "    fig.add_trace(go.Scatter(x=acts.coord('time')[window], y=acts.numpy()[window, j], name=f'assembly {j}'))\n"
             "    events = acts.coord('time')[window][planted.events[window, ref]]\n"
             "    fig.add_trace(go.Scatter(x=events, y=np.full(len(events), -0.3 - 0.2 * ref), mode='markers',\n"
             "                             marker=dict(symbol='line-ns-open', size=8), name=f'planted events {ref}'))\n"
             "interp.results.themed(fig, title='assembly activations and planted events', xaxis_title='time (s)')"),
    ("md", "### Into a report\nEvery result places itself in a report section."),
    ("code", "from interp.report.html import Report\n"
             "report = Report('Tectum session: assemblies')\n"
             "report.add(found)\nreport.add(match)\n"
             "print(f'{len(report.to_html()):,} characters of self-contained HTML')"),
]
nb = nbf.v4.new_notebook()
nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/07_your_recording.ipynb")
