"""Writes notebooks/08_your_model.ipynb (run: python notebooks/_make_08.py)."""

from pathlib import Path

import nbformat as nbf

cells = [
    ("md", "# 08 · Your own model\n\n"
           "`interp.models.load` takes your checkpoint as well as zoo names: a local Hugging Face directory "
           "(what `save_pretrained` writes), a `transformers` model object with its tokenizer, a `TransformerBridge`, "
           "or any `nn.Module`. Language models whose architecture TransformerLens bridges (GPT-2, GPT-NeoX, Llama, "
           "Gemma, Qwen, OLMo, Phi, Mixtral, BERT, ...) come back as a `TransformerBridge`, so every hook name, "
           "capture, patching and labelling tool works on them as on the zoo models. Everything here runs offline "
           "in seconds on a tiny random model standing in for yours."),
    ("code", "import os\nimport tempfile\nfrom pathlib import Path\n\nimport pandas as pd\n"
             "os.environ.setdefault('HF_HUB_OFFLINE', '1')  # this notebook never downloads anything\n"
             "import torch\nimport interp\nimport patching\n"
             "torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine"),
    ("md", "## A checkpoint on disk\nHere: a 2-layer Llama-architecture model with grouped-query attention, built "
           "from its config with random weights, and the zoo's integer tokenizer (its words are token ids: "
           "`\"17 5 99\"`). Any model and tokenizer saved with `save_pretrained` load the same way."),
    ("code", "from transformers import LlamaConfig, LlamaForCausalLM\n\n"
             "folder = Path(tempfile.mkdtemp()) / 'my_llama'\n"
             "torch.manual_seed(0)\n"
             "config = LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,\n"
             "                     intermediate_size=128, vocab_size=128, max_position_embeddings=64, initializer_range=0.2)\n"
             "LlamaForCausalLM(config).save_pretrained(folder)\n"
             "interp.models.integer_tokenizer(vocab_size=128).save_pretrained(folder)\n"
             "sorted(p.name for p in folder.iterdir())"),
    ("code", "model, tokenizer = interp.models.load(folder)\n"
             "print(type(model).__name__, model.cfg.architecture, model.cfg.n_layers, 'layers, d_model', model.cfg.d_model)\n"
             "model.to_str_tokens('5 6 7 5 6')   # the bridge prepends BOS"),
    ("md", "## Capture\nHook names with globs, as on every bridge."),
    ("code", "texts = ['5 6 7 5 6', '9 8 7 9 8', '3 1 4 1 5']\n"
             "acts = interp.capture(model, texts, ['blocks.*.mlp.hook_post', 'blocks.*.attn.hook_z'], positions='last',\n"
             "                      progress=False)\n"
             "acts['blocks.1.mlp.hook_post'], acts['blocks.0.attn.hook_z']"),
    ("md", "## Activation patching\nClean and corrupted prompts differ in one token; the metric is the logit "
           "difference between tokens 7 and 8 at the last position. Patching the clean residual stream into the "
           "corrupted run, position by position, shows where the difference is carried (a random model, so the "
           "pattern itself means nothing)."),
    ("code", "clean, corrupted = model.to_tokens('5 6 7 5 6'), model.to_tokens('5 6 7 9 6')\n"
             "metric = patching.metrics.logit_diff(7, 8)\n"
             "resid = patching.activation_patching(model, clean, corrupted, metric, 'resid_pre')\n"
             "resid.plot()"),
    ("code", "heads = patching.activation_patching(model, clean, corrupted, metric, 'z')   # per head (4 query heads)\n"
             "heads.to_frame()"),
    ("md", "## RelP, AtP and integrated gradients\nThe four attribution methods take the same call and return "
           "the same result type, so their cells compare directly. RelP's LRP rules go where this architecture "
           "needs them (RMSNorm scale, the SiLU activation, the gated product); `extra['rules']` says where, and "
           "`relevance_conservation` checks that, with every rule on, relevance at the input sums to the metric."),
    ("code", "import numpy as np\n"
             "sites = ['resid_pre', 'heads', 'mlp_pre']\n"
             "truth = patching.activation_patching(model, clean, corrupted, metric, sites)\n"
             "rows = []\n"
             "for name, method in patching.METHODS.items():\n"
             "    res = method(model, clean, corrupted, metric, sites)\n"
             "    rows += [{'method': name, 'site': s, 'r with activation patching':\n"
             "              np.corrcoef(res[s].effect.flatten(), truth[s].effect.flatten())[0, 1]} for s in sites]\n"
             "relp = patching.relevance_patching(model, clean, corrupted, metric, sites)\n"
             "print({rule: len(where) for rule, where in relp.extra['rules'].items()})\n"
             "pd.DataFrame(rows).pivot(index='site', columns='method', values='r with activation patching').round(3)"),
    ("code", "patching.relevance_conservation(model, clean, lambda logits: logits[:, -1, 7].sum())"),
    ("md", "## Labels\nThe label pipeline streams a corpus through one site and labels every unit (exemplars, "
           "phenomena, a templated label scored on held-out tokens). A random model's neurons have no meaning; "
           "the point is that your checkpoint goes through the same pipeline as the zoo's."),
    ("code", "from interp.label import label_neurons\n"
             "corpus = torch.randint(1, 128, (24, 16), generator=torch.Generator().manual_seed(0))\n"
             "labels = label_neurons(model, 'blocks.1.mlp.hook_post', corpus, k=4, window=(3, 1), units=range(8))\n"
             "labels.table[['name', 'label', 'score', 'phenomena']]"),
    ("md", "## Vocabulary projection\nWhat each MLP neuron writes, read out through the model's own final norm "
           "and unembedding (`interp.label.vocab_projection`; the same read-out as the forward pass, checked "
           "against the model's logits)."),
    ("code", "from interp.label import vocab_projection\n"
             "vocab_projection(model, 1, 'out', units=range(5), k=5).to_frame()"),
    ("md", "## A model object in memory\nA `transformers` model you just built or fine-tuned goes in directly, "
           "with its tokenizer (even one built in memory: it is saved and reloaded for TransformerLens behind the "
           "scenes). The object is wrapped in place: save it first if you need `save_pretrained` later."),
    ("code", "from transformers import GPT2Config, GPT2LMHeadModel\n\n"
             "gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=64, vocab_size=128))\n"
             "bridge, tok = interp.models.load(gpt2, tokenizer=interp.models.integer_tokenizer(vocab_size=128))\n"
             "interp.capture(bridge, texts, 'blocks.0.hook_resid_post', positions='mean', progress=False)"),
    ("md", "## Any `nn.Module`\nComes back as it is, with `preprocess=None`; its sites are module paths."),
    ("code", "net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),\n"
             "                          torch.nn.Linear(8 * 6 * 6, 5)).eval()\n"
             "net, preprocess = interp.models.load(net)\n"
             "images = torch.randn(4, 3, 8, 8)\n"
             "interp.capture(net, images, '1', spatial='mean', progress=False)   # the ReLU's output, mean over space"),
    ("md", "## Sites inside structured outputs and reused modules\n"
           "A module that returns a tuple, dict or dataclass names the element: `rnn:output[1]` (a GRU's `h_n`), "
           "`lstm:output[1][0]`, `encoder:output[last_hidden_state]`; without one the site is refused with the list "
           "of elements. A module that runs several times per forward pass (the ReLU of a ResNet `BasicBlock`) names "
           "the call: `layer1.0.relu#1`. A probe pass checks both, and finds the batch axis (`h_n` is "
           "`(layers, batch, hidden)`: it is handed over as `(batch, layers * hidden)`)."),
    ("code", "class GRUClassifier(torch.nn.Module):\n"
             "    def __init__(self):\n"
             "        super().__init__()\n"
             "        self.emb, self.rnn, self.head = torch.nn.Embedding(20, 8), torch.nn.GRU(8, 6, batch_first=True), "
             "torch.nn.Linear(6, 3)\n"
             "    def forward(self, x):\n"
             "        _, h_n = self.rnn(self.emb(x))\n"
             "        return self.head(h_n[-1])\n\n"
             "torch.manual_seed(0)\n"
             "gru = GRUClassifier().eval()\n"
             "tokens = torch.randint(0, 20, (4, 5))\n"
             "try:\n    interp.capture(gru, tokens, 'rnn', progress=False)\n"
             "except interp.InterpError as err:\n    print(type(err).__name__, err)\n"
             "interp.capture(gru, tokens, 'rnn:output[1]', progress=False)"),
    ("code", "other = torch.randint(0, 20, (4, 5))\n"
             "effect = patching.activation_patching(gru, tokens, other, lambda out: out[:, 1].mean(), 'rnn:output[1]')\n"
             "effect.to_frame().head()"),
    ("md", "## Hub names\nA Hugging Face hub / TransformerLens name is read from the local Hugging Face cache, or "
           "downloaded when online. Offline, the error says how to bring it in as a directory."),
    ("code", "try:\n    interp.models.load('EleutherAI/pythia-70m')\nexcept interp.InterpError as err:\n"
             "    print(type(err).__name__, str(err)[:400])"),
]

nb = nbf.v4.new_notebook()
nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).with_name("08_your_model.ipynb"))
