"""The CUDA paths of the generated loop (benchmarks/gpu_paths.py): fp16 + GradScaler, bf16, channels_last, compile."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from conftest import ROOT

from mtdsl.compiler import compile_text


def _script():
    spec = importlib.util.spec_from_file_location("gpu_paths", ROOT / "benchmarks" / "gpu_paths.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_paths"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", ["fp16", "bf16", "fp16+channels_last", "fp16+compile"])
def test_each_variant_is_the_spec_with_its_settings_and_one_phase(variant):
    script = _script()
    text = script.variant_spec((ROOT / "specs" / "quickstart.mtl").read_text(), script.VARIANTS[variant], epochs=2)
    train = compile_text(text, "variant.mtl").spec.train
    assert [(phase.name, phase.epochs) for phase in train.phases] == [("all", 2)]
    assert train.precision == variant.split("+")[0]
    assert train.channels_last == ("channels_last" in variant) and train.compile == ("compile" in variant)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("variant", ["fp16", "bf16", "fp16+channels_last", "fp16+compile"])
def test_cuda_variant_trains_with_finite_falling_losses(variant, tmp_path):
    script = _script()
    text = script.variant_spec((ROOT / "specs" / "quickstart.mtl").read_text(), script.VARIANTS[variant], epochs=2)
    result = script.run_variant(variant.replace("+", "_"), text, tmp_path, "cuda", seed=0, quiet=True)
    assert result["finite"] and result["falling"], result
    assert result["images_per_second"] > 0
