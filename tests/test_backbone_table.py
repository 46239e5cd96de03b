"""The table of timm backbones shipped with mtdsl: current for its reader, equal to what timm says, and the reason
``mtdsl check`` needs no torch on a fresh install."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mtdsl.graph import backbone_cache, backbone_table
from mtdsl.graph.backbones import BackboneInfo, read_backbone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = backbone_table._table()


def test_the_table_was_read_by_this_reader_of_timm():
    if TABLE.get("timm") != backbone_cache.timm_version():
        pytest.skip(f"the table is for timm {TABLE.get('timm')}; timm {backbone_cache.timm_version()} is installed "
                    "(constraints.txt pins the table's)")
    assert TABLE.get("reader") == backbone_cache.reader_version(), (
        "src/mtdsl/graph/backbones.py changed since the table was written: run `make backbone-table`")
    assert len(TABLE["records"]) > 1000


@pytest.mark.parametrize("model", ["test_resnet", "test_efficientnet", "test_convnext", "test_vit", "test_mambaout",
                                   "resnet10t", "tf_efficientnet_lite0"])
def test_a_shipped_record_is_what_timm_says(model):
    if not backbone_table.is_current(TABLE):
        pytest.skip("the table is not for this reader and timm version")
    assert BackboneInfo.from_record(backbone_table.record(model)) == read_backbone(model)


def test_a_pretrained_tag_or_a_stale_table_is_read_from_timm(monkeypatch):
    assert backbone_table.record("resnet18.a1_in1k") is None
    monkeypatch.setitem(TABLE, "reader", "another")
    assert backbone_table.record("test_resnet") is None


def test_the_cache_file_comes_first_and_caching_off_passes_over_both(monkeypatch, tmp_path):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    backbone_cache.write("test_resnet", {"model": "test_resnet", "kept": True})
    assert backbone_cache.read("test_resnet")["kept"]
    monkeypatch.setenv("MTDSL_CACHE_DIR", "")
    assert backbone_cache.read("test_resnet") is None


def test_checking_a_spec_on_a_fresh_install_imports_no_torch(tmp_path):
    if not backbone_table.is_current(TABLE):
        pytest.skip("the table is not for this reader and timm version")
    code = ("import sys; from mtdsl.check_command import spec_error; "
            "error = spec_error('specs/quickstart.mtl', {}); "
            "print(error, 'torch' in sys.modules, 'timm' in sys.modules)")
    env = {**os.environ, "MTDSL_CACHE_DIR": str(tmp_path / "empty")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["None", "False", "False"]


@pytest.mark.parametrize("pattern", ["*", "resnet*", "vit_*", "*lite*", "nothing_like_it*"])
def test_the_table_lists_what_timm_lists_in_timms_order(pattern):
    if not backbone_table.is_current(TABLE):
        pytest.skip("the table is not for this reader and timm version")
    import timm
    from timm.models._registry import _model_entrypoints

    timms_own = [name for name in timm.list_models(pattern)  # not the models other tests register
                 if _model_entrypoints[name].__module__.startswith("timm.")]
    assert backbone_table.matching(pattern) == timms_own
