"""The file of timm metadata that lets ``mtdsl check`` skip torch: it only ever saves time, never changes an answer."""

from __future__ import annotations

from mtdsl.graph import backbone_cache
from mtdsl.graph.backbones import BackboneInfo, backbone_info, read_backbone


def test_a_record_reads_back_as_what_timm_says(monkeypatch, tmp_path):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    for model in ("test_resnet", "test_efficientnet"):
        info = read_backbone(model)
        backbone_cache.write(model, info.to_record())
        assert BackboneInfo.from_record(backbone_cache.read(model)) == info
    assert backbone_cache.cache_file().parent == tmp_path


def test_a_corrupt_file_or_record_is_read_again_from_timm(monkeypatch, tmp_path):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    backbone_cache.cache_file().write_text("{not json", encoding="utf-8")
    assert backbone_cache.kept("test_resnet") is None
    backbone_cache.write("test_resnet", {"model": "test_resnet", "segments": "?"})
    backbone_info.cache_clear()
    try:
        assert backbone_info("test_resnet") == read_backbone("test_resnet")
        assert BackboneInfo.from_record(backbone_cache.read("test_resnet")) == read_backbone("test_resnet")
    finally:
        backbone_info.cache_clear()


def test_an_empty_cache_dir_turns_the_cache_off(monkeypatch):
    monkeypatch.setenv("MTDSL_CACHE_DIR", "")
    backbone_cache.write("test_resnet", {"model": "test_resnet"})
    assert backbone_cache.cache_file() is None and backbone_cache.read("test_resnet") is None
