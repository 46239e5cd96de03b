from __future__ import annotations

import json

import pytest
from conftest import ROOT, SPECS

from mtdsl.cli import main
from mtdsl.compiler import compile_file, write_artefacts
from mtdsl.render import dot as dot_module

ARTEFACTS = {"model.py", "graph.json", "architecture.dot", "summary.json"}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_compile_writes_every_artefact_for_every_spec(path, tmp_path, capsys):
    assert main(["compile", str(path), "--out", str(tmp_path)]) == 0
    written = {p.name for p in tmp_path.iterdir()}
    assert ARTEFACTS <= written
    if dot_module.dot_available():
        assert {"architecture.svg", "architecture.png"} <= written
        assert (tmp_path / "architecture.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["single_task_params"] == sum(t["path_params"] for t in summary["tasks"].values())
    assert summary["param_ratio"] >= 1.0
    assert "single / multi" in capsys.readouterr().out


def test_plants_compiles_in_both_thesis_variants(tmp_path):
    for arch in ("resnet101", "efficientnet_b3"):
        compilation = compile_file(ROOT / "specs" / "plants.mtl", {"arch": arch})
        assert compilation.graph.nodes["trunk.stage4"]["model"] == arch


def test_multilabel14_has_fourteen_binary_heads_sharing_one_backbone():
    compilation = write_artefacts(compile_file(ROOT / "specs" / "multilabel14.mtl"), ROOT / "build" / "test_ml14")
    heads = [n for n, d in compilation.graph.nodes(data=True) if d["kind"] == "head"]
    assert len(heads) == 14
    assert all(compilation.graph.nodes[h]["num_outputs"] == 1 for h in heads)
    # fourteen heads on one ResNet-101 instead of fourteen ResNet-101s
    assert compilation.summary["param_ratio"] == pytest.approx(14, rel=0.01)


def test_render_without_graphviz_still_writes_dot(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dot_module.shutil, "which", lambda name: None)
    assert main(["render", str(ROOT / "specs" / "quickstart.mtl"), "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"architecture.dot"}
    assert "apt-get install graphviz" in capsys.readouterr().out


def test_diagram_marks_shared_and_private_nodes_and_shapes(two_branch):
    source = dot_module.to_dot(two_branch.graph).source
    assert f'fillcolor="{dot_module.SHARED_FILL}"' in source
    assert "shared: b, c" in source
    assert "192×4×4" in source
    assert "96 ch · stride 32" in source


def test_user_errors_exit_2_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.mtl"
    bad.write_text('model m\nbackbone trunk = timm("resnet5O")\n')
    assert main(["compile", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:23" in err and "Traceback" not in err and "resnet50" in err


def test_missing_spec_file_is_a_clear_error(tmp_path, capsys):
    assert main(["compile", str(tmp_path / "nope.mtl")]) == 2
    assert "spec file not found" in capsys.readouterr().err


def test_set_overrides_variables_and_rejects_unknown_ones(tmp_path, capsys):
    spec = ROOT / "specs" / "plants.mtl"
    assert main(["compile", str(spec), "--set", "nosuch=1", "--out", str(tmp_path)]) == 2
    assert "--set nosuch" in capsys.readouterr().err


def test_streams_are_planned_once_from_spec_to_generated_loop(tmp_path, monkeypatch):
    """Validation, the generated loop and its constants all read one plan of the spec's streams."""
    from mtdsl.spec import streams

    calls = []
    plan = streams.plan_streams
    monkeypatch.setattr(streams, "plan_streams", lambda spec: calls.append(spec) or plan(spec))
    compilation = compile_file(ROOT / "specs" / "quickstart.mtl")
    write_artefacts(compilation, tmp_path)
    assert (tmp_path / "train.py").is_file() and len(calls) == 1


@pytest.mark.parametrize(("command", "collects"), [("compile", False), ("check", False), ("train", True)])
def test_short_commands_run_without_the_cyclic_collector_and_restore_it(command, collects, monkeypatch):
    import gc

    import mtdsl.cli as cli

    seen = []

    def run(args, console):
        seen.append(gc.isenabled())
        raise cli.SpecValueError("stop here")

    original_parser = cli.parser

    def parser():
        built = original_parser()
        for action in built._subparsers._group_actions:
            for sub in action.choices.values():
                sub.set_defaults(run=run)
        return built

    monkeypatch.setattr(cli, "parser", parser)
    assert gc.isenabled()
    assert cli.main([command, "x.mtl"]) == 2
    assert seen == [collects]
    assert gc.isenabled()  # given back, after an error too
