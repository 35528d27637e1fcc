"""Vision part of the model zoo: efficientnet-lite0, resnet20-cifar10, digits-vit."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data as skdata

import interp.models
from interp.errors import ConfigError, DimensionError, InputTypeError, MissingDependencyError
from interp.models import digits, vision

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _top1(model, batch):
    with torch.no_grad():
        return model(batch).argmax(-1).tolist()


def _hook_outputs(model, names, x):
    modules = dict(model.named_modules())
    outputs: dict[str, list] = {name: [] for name in names}
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: outputs[n].append(o)) for n in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


# ------------------------------------------------------------------------------------------- efficientnet


@pytest.fixture(scope="module")
def efficientnet():
    return interp.models.load("efficientnet-lite0")


def test_efficientnet_puts_chelsea_in_a_cat_class(efficientnet):
    model, preprocess = efficientnet
    with torch.no_grad():
        probs = model(preprocess(skdata.chelsea())).softmax(-1)[0]
    top1 = int(probs.argmax())
    assert top1 in CAT_CLASSES, (top1, model.class_names[top1])
    assert "cat" in model.class_names[top1]
    assert probs[list(CAT_CLASSES)].sum() > 0.9  # nearly all mass on the five cat classes
    coffee = _top1(model, preprocess(skdata.coffee()))[0]
    assert model.class_names[coffee] == "espresso"


def test_efficientnet_is_the_package_model_with_one_hook_per_activation(efficientnet):
    model, preprocess = efficientnet
    reference = vision.build_efficientnet_lite0(hookable=False)
    x = preprocess(skdata.rocket())
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    names = [n for n, m in model.named_modules() if n and not isinstance(m, torch.nn.ModuleList)]
    assert not [n for n in names if n.endswith("_swish")]
    outputs = _hook_outputs(model, names, x)
    assert all(len(v) == 1 for v in outputs.values()), [n for n, v in outputs.items() if len(v) != 1]
    assert outputs["_head_act"][0].shape == (1, 1280, 7, 7)
    assert outputs["_blocks.3._depthwise_act"][0].min() >= 0 and outputs["_blocks.3._depthwise_act"][0].max() <= 6
    assert not model.training


def test_efficientnet_preprocess_is_the_tensorflow_lite_formula(efficientnet):
    _, preprocess = efficientnet
    image = np.random.default_rng(0).integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    expected = (image[16:240, 16:240].astype(np.float32) - 127.0) / 128.0  # crop 224/256, no resize needed
    got = preprocess(image)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_imagenet_class_names():
    names = vision.imagenet_class_names()
    assert len(names) == 1000 and len(set(names)) == 999  # ImageNet has two 'crane's: the bird and the machine
    assert names[134] == names[517] == "crane"
    assert names[0] == "tench, Tinca tinca" and names[285] == "Egyptian cat" and names[999].startswith("toilet tissue")


def test_efficientnet_missing_package_names_the_pip_command(monkeypatch):
    vision._efficientnet_lite0.cache_clear()
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    try:
        with pytest.raises(MissingDependencyError, match="pip install --no-deps efficientnet-lite-pytorch"):
            vision.load_efficientnet_lite0()
    finally:
        vision._efficientnet_lite0.cache_clear()


def test_efficientnet_bad_options():
    with pytest.raises(ConfigError, match="normalization"):
        vision.load_efficientnet_lite0(normalization="caffe")
    with pytest.raises(ConfigError, match="device"):
        vision.load_efficientnet_lite0(device="not-a-device")


# ---------------------------------------------------------------------------------------------- resnet20


def test_resnet20_weights_are_vendored_with_licence():
    folder = vision.weights_dir("resnet20_cifar10")
    blob = (folder / vision.RESNET20_FILE).read_bytes()
    assert hashlib.sha256(blob).hexdigest().startswith("12fca82f")  # torch.hub naming: sha256 prefix
    assert "Yerlan Idelbayev" in (folder / "LICENSE").read_text()
    checkpoint = torch.load(folder / vision.RESNET20_FILE, map_location="cpu", weights_only=True)
    assert round(float(checkpoint["best_prec1"]), 2) == 91.78


def test_resnet20_loads_strictly_with_paper_parameter_count():
    model, _ = interp.models.load("resnet20-cifar10")
    assert sum(p.numel() for p in model.parameters()) == 269_722  # "0.27M" (He et al. 2016, table 6)
    state = vision.resnet20_state_dict()
    # the 2018 checkpoint predates BatchNorm's num_batches_tracked buffer, which torch fills in on strict loading
    assert set(state) == {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert model.class_names == list(vision.CIFAR10_CLASSES)
    assert interp.models.load("resnet20-cifar10")[0] is model  # cached in-process


def _reference_resnet20(state, x):
    """akamaster's ResNet-20 forward written with torch.nn.functional straight from the checkpoint tensors."""

    def bn(h, prefix):
        return F.batch_norm(h, state[prefix + ".running_mean"], state[prefix + ".running_var"],
                            state[prefix + ".weight"], state[prefix + ".bias"], training=False, eps=1e-5)

    h = F.relu(bn(F.conv2d(x, state["conv1.weight"], padding=1), "bn1"))
    for layer, planes in zip((1, 2, 3), (16, 32, 64)):
        for block in range(3):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.relu(bn(F.conv2d(h, state[p + ".conv1.weight"], stride=stride, padding=1), p + ".bn1"))
            out = bn(F.conv2d(out, state[p + ".conv2.weight"], padding=1), p + ".bn2")
            if stride == 2:
                shortcut = F.pad(h[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
            else:
                shortcut = h
            h = F.relu(out + shortcut)
    return F.linear(h.mean(dim=(2, 3)), state["linear.weight"], state["linear.bias"])


def test_resnet20_matches_a_functional_reference_forward():
    model, _ = vision.load_resnet20()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference_resnet20(vision.resnet20_state_dict(), x))


def test_resnet20_classifies_real_photos_into_the_right_cifar_class():
    model, preprocess = vision.load_resnet20()
    images = [skdata.chelsea(), skdata.horse(), skdata.stereo_motorcycle()[0]]
    with torch.no_grad():
        probs = model(preprocess(images)).softmax(-1)
    names = [model.class_names[i] for i in probs.argmax(-1).tolist()]
    assert names == ["cat", "horse", "automobile"]  # the motorcycle's nearest CIFAR-10 class
    assert probs[0, 3] > 0.9 and probs[1, 7] > 0.9


def test_resnet20_is_deterministic_in_eval_mode():
    model, preprocess = vision.load_resnet20()
    running_mean = model.bn1.running_mean.clone()
    x = preprocess(skdata.astronaut())
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second) and not model.training
    assert torch.equal(model.bn1.running_mean, running_mean)


def test_option_a_shortcut_by_hand():
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).view(2, 2, 4, 4)
    out = vision.OptionAShortcut(extra_channels=2)(x)
    assert out.shape == (2, 4, 2, 2)
    assert torch.equal(out[:, 0], torch.zeros(2, 2, 2)) and torch.equal(out[:, 3], torch.zeros(2, 2, 2))
    assert torch.equal(out[0, 1], torch.tensor([[0.0, 2.0], [8.0, 10.0]]))


def test_resnet20_rejects_bad_input():
    model, _ = vision.load_resnet20()
    with pytest.raises(DimensionError, match="N x 3 x H x W"):
        model(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ConfigError, match="normalization"):
        vision.load_resnet20(normalization="mnist")


# --------------------------------------------------------------------------------------- image preprocess


def test_preprocess_accepts_every_image_form_alike():
    pre = vision.ImagePreprocess(size=16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    image = skdata.chelsea()
    single = pre(image)
    assert single.shape == (1, 3, 16, 16) and single.dtype == torch.float32
    assert torch.equal(pre(Image.fromarray(image)), single)
    assert torch.equal(pre(image.astype(np.float64) / 255.0), single)
    assert torch.equal(pre(torch.from_numpy(image)), single)
    batch = pre(np.stack([image, image[::-1]]))
    assert batch.shape == (2, 3, 16, 16) and torch.equal(batch[:1], single)
    assert torch.equal(pre([image, image[::-1]]), batch)
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 7, np.uint8)], axis=-1)
    assert torch.equal(pre(rgba), single)
    grey = pre(skdata.camera())
    assert torch.allclose((grey[0, 0] * 0.2 + 0.5), (grey[0, 1] * 0.25 + 0.4), atol=1e-6)  # grey repeated


def test_preprocess_resize_by_hand():
    pre = vision.ImagePreprocess(size=2, mean=(0.0,) * 3, std=(1.0,) * 3, crop_fraction=0.5, resample="nearest")
    image = np.zeros((8, 8, 3), np.uint8)
    image[2:6, 2:6] = 255  # the central half is white: cropping it leaves only white pixels
    assert torch.equal(pre(image), torch.ones(1, 3, 2, 2))


def test_preprocess_errors():
    pre = vision.ImagePreprocess(size=8, mean=(0.0,) * 3, std=(1.0,) * 3)
    with pytest.raises(InputTypeError, match="expected an image"):
        pre("cat.png")
    with pytest.raises(DimensionError, match="channels last"):
        pre(torch.zeros(3, 32, 32))
    with pytest.raises(InputTypeError, match=r"\[0, 1\]"):
        pre(np.full((8, 8, 3), 200.0))
    with pytest.raises(DimensionError, match="empty"):
        pre([])
    with pytest.raises(ConfigError, match="crop_fraction"):
        vision.ImagePreprocess(size=8, mean=(0.0,) * 3, std=(1.0,) * 3, crop_fraction=0)


# ------------------------------------------------------------------------------------------------ digits


def test_digits_split_is_fixed_and_stratified():
    from sklearn.datasets import load_digits

    split = digits.load_digits_split()
    assert split.train_images.shape == (1347, 8, 8) and split.test_images.shape == (450, 8, 8)
    assert not set(split.train_index) & set(split.test_index)
    reference = load_digits()
    np.testing.assert_array_equal(split.test_images, reference.images[split.test_index])
    np.testing.assert_array_equal(split.test_labels, reference.target[split.test_index])
    assert np.bincount(split.test_labels).min() >= 43  # stratified: about 45 per class
    digits.load_digits_split.cache_clear()
    np.testing.assert_array_equal(digits.load_digits_split().test_index, split.test_index)


def test_digits_preprocess():
    pre = digits.DigitsPreprocess()
    split = digits.load_digits_split()
    x = pre(split.test_images[:5])
    assert x.shape == (5, 1, 8, 8)
    torch.testing.assert_close(x[:, 0], torch.from_numpy(split.test_images[:5] / 16.0))
    assert torch.equal(pre(split.test_images[:5].reshape(5, 64)), x)
    assert torch.equal(pre(split.test_images[0]), x[:1])
    big = np.zeros((16, 16), np.uint8)
    big[:2, :2] = 255  # one 2x2 block white -> one pixel of 8x8 white (area averaging)
    expected = torch.zeros(1, 1, 8, 8)
    expected[0, 0, 0, 0] = 1.0
    assert torch.equal(pre(big), expected)
    with pytest.raises(DimensionError, match="8x8"):
        pre(np.zeros((7, 7)))
    with pytest.raises(InputTypeError, match="0..16"):
        pre(np.full((8, 8), 17.0))
    with pytest.raises(InputTypeError):
        pre("seven")


def test_digits_vit_layout_and_hooks():
    model = digits.DigitsViT().eval()
    x = digits.DigitsPreprocess()(digits.load_digits_split().test_images[:3])
    for i in range(4):
        mlp = model.blocks[i].mlp
        assert (mlp.fc1.out_features, mlp.fc2.in_features) == (128, 128) and isinstance(mlp.act, torch.nn.GELU)
    names = ["blocks.1.mlp.fc1", "blocks.1.mlp.act", "blocks.1.mlp.fc2", "blocks.1.attn.pattern", "head"]
    out = {k: v[0] for k, v in _hook_outputs(model, names, x).items()}
    assert out["blocks.1.mlp.act"].shape == (3, 17, 128)
    torch.testing.assert_close(out["blocks.1.mlp.act"], F.gelu(out["blocks.1.mlp.fc1"]))
    torch.testing.assert_close(out["blocks.1.mlp.fc2"], model.blocks[1].mlp.fc2(out["blocks.1.mlp.act"]))
    pattern = out["blocks.1.attn.pattern"]
    assert pattern.shape == (3, 4, 17, 17)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(3, 4, 17))
    assert out["head"].shape == (3, 10)
    with pytest.raises(DimensionError, match="N x 1 x 8 x 8"):
        model(torch.zeros(2, 64))


def test_digits_training_is_deterministic_per_seed():
    quick = digits.TrainConfig(epochs=1)
    first, metrics = digits.train_digits_vit(seed=3, train=quick, progress=False)
    second, _ = digits.train_digits_vit(seed=3, train=quick, progress=False)
    other, _ = digits.train_digits_vit(seed=4, train=quick, progress=False)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert not torch.equal(first.head.weight, other.head.weight)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and not first.training


@pytest.mark.slow
def test_digits_vit_reaches_95_percent_and_is_cached(monkeypatch):
    model, preprocess = interp.models.load("digits-vit")  # trains on first use (about 20-60 s), then cached
    split = digits.load_digits_split()
    with torch.no_grad():
        predicted = model(preprocess(split.test_images)).argmax(-1).numpy()
    accuracy = (predicted == split.test_labels).mean()
    assert accuracy >= 0.95, accuracy
    assert abs(accuracy - model.test_accuracy) < 1e-6
    assert model.class_names == [str(d) for d in range(10)] and not model.training
    assert interp.models.load("digits-vit")[0] is model
    # a fresh process reads the cached file instead of training again
    path = digits._cache_path(0, digits.DigitsViTConfig(), digits.TrainConfig())
    assert path.exists()
    monkeypatch.setattr(digits, "train_digits_vit", lambda *a, **k: pytest.fail("trained again"))
    digits._digits_vit.cache_clear()
    reloaded, _ = digits.load_digits_vit()
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ConfigError, match="seed"):
        digits.load_digits_vit(seed="0")
