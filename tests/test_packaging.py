"""mtdsl as a package anyone may install: its declared dependencies, its licence, and the wheel it builds.

The fast tests read ``pyproject.toml`` and the source. The slow ones build the wheel (2–8 s) and read it,
and install it into a fresh virtual environment with no torch in it (about a minute) and run the ``mtdsl``
console script there: ``--help``, and ``mtdsl check`` on specs whose mistakes are the spec's own (the checks
that need no backbone metadata, so no torch: see :mod:`mtdsl.check_command`).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.version import Version

import mtdsl

SOURCE = Path(mtdsl.__file__).resolve().parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
#: Released often, and what users most want at their newest: a lower bound only.
UNCAPPED = ("torch", "torchvision", "timm")
#: Operators that refuse some release above the versions they name.
CAPS = ("<", "<=", "==", "===", "~=")


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements() -> dict[str, list[Requirement]]:
    """Every requirement in ``pyproject.toml``: ``dependencies`` under ``""``, each extra under its name."""
    groups = {"": PROJECT["dependencies"], **PROJECT.get("optional-dependencies", {})}
    return {group: [Requirement(text) for text in texts] for group, texts in groups.items()}


def _declared() -> dict[str, str]:
    """Each declared distribution (normalised) → where: ``dependencies`` or ``extra <name>``."""
    return {_normal(req.name): f"extra {group}" if group else "dependencies"
            for group, reqs in _requirements().items() for req in reqs}


def _third_party_imports() -> dict[str, list[str]]:
    """Each top-level module imported anywhere in ``src/mtdsl`` (in functions too) that is neither the standard
    library nor mtdsl → the files importing it."""
    found: dict[str, set[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("mtdsl", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(SOURCE.parent)))
    return {module: sorted(files) for module, files in sorted(found.items())}


def test_every_third_party_import_in_the_source_is_a_declared_dependency():
    """An import the metadata does not declare works in the dev environment and fails for whoever installs the
    wheel. Import names map to distributions through what is installed (``PIL`` → ``pillow``)."""
    imports = _third_party_imports()
    assert {"torch", "timm", "lark", "pydantic", "safetensors", "PIL"} <= set(imports)  # the walk finds them
    installed = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = {module: files for module, files in imports.items()
               if not {_normal(d) for d in installed.get(module, [module])} & set(declared)}
    assert not missing, "imported in src/mtdsl but declared nowhere in pyproject.toml (dependencies or an extra): " + \
        "; ".join(f"{module} ({', '.join(files[:2])})" for module, files in missing.items())


def test_torch_torchvision_and_timm_have_a_lower_bound_and_no_cap():
    requirements = {_normal(req.name): req for req in _requirements()[""]}
    for name in UNCAPPED:
        assert name in requirements, f"{name} is not a dependency"
        operators = [spec.operator for spec in requirements[name].specifier]
        assert ">=" in operators, f"{requirements[name]} has no lower bound"
    for group, reqs in _requirements().items():
        for req in reqs:
            if _normal(req.name) in UNCAPPED:
                caps = [str(spec) for spec in req.specifier if spec.operator in CAPS]
                assert not caps, f"{req} ({group or 'dependencies'}) refuses future releases: {', '.join(caps)}"


def test_the_pinned_versions_satisfy_the_declared_ranges():
    """``constraints.txt`` pins what was tested; a range that refused a pin would make ``make test`` unsolvable."""
    requirements = {_normal(req.name): req for reqs in _requirements().values() for req in reqs}
    lines = [line.split("#")[0].strip() for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()]
    pins = [Requirement(line) for line in lines if line]
    assert pins
    for pin in pins:
        version = Version(next(iter(pin.specifier)).version)
        if _normal(pin.name) in requirements:
            assert requirements[_normal(pin.name)].specifier.contains(version, prereleases=True), \
                f"constraints.txt pins {pin}, which pyproject.toml's {requirements[_normal(pin.name)]} refuses"


def test_the_licence_and_the_project_urls_are_declared():
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence and "Copyright 2026 The mtdsl authors" in licence
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    assert {"Homepage", "Documentation", "Repository"} <= set(PROJECT["urls"])
    assert all(url.startswith("https://") for url in PROJECT["urls"].values())


def test_package_data_covers_every_file_that_is_not_a_module_of_a_package():
    """setuptools packs a package's modules by itself; the grammar, the loop template (in a folder with no
    ``__init__.py``), ``py.typed`` and stubs only through ``package-data``'s globs."""
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["mtdsl"]
    files = [path.relative_to(SOURCE) for path in SOURCE.rglob("*")
             if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc")]
    loose = [path for path in files if not (path.suffix == ".py" and (SOURCE / path.parent / "__init__.py").exists())]
    assert {Path("frontend/grammar.lark"), Path("codegen/templates/train_loop.py"), Path("py.typed")} <= set(loose)
    uncovered = [str(path) for path in loose if not any(path.match(pattern) and len(path.parts) == len(
        Path(pattern).parts) for pattern in globs)]
    assert not uncovered, f"not in [tool.setuptools.package-data], so not in the wheel: {', '.join(uncovered)}"


def _build_wheel(destination: Path) -> Path:
    """The wheel of a copy of the project's package files (setuptools writes ``build/`` and ``*.egg-info`` where it
    builds, and the working tree is not the place). Without build isolation when setuptools here is new enough for
    the declared build requirement, so no package index is needed."""
    tree = destination / "tree"
    tree.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    needed = Requirement(next(r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")))
    try:
        isolated = not needed.specifier.contains(importlib.metadata.version("setuptools"))
    except importlib.metadata.PackageNotFoundError:
        isolated = True
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(destination / "dist"),
               *([] if isolated else ["--no-build-isolation"]), str(tree)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (destination / "dist").glob("mtdsl-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.mark.slow
def test_the_wheel_holds_the_grammar_the_templates_and_the_licence_and_declares_its_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"mtdsl-{mtdsl.__version__}.dist-info/METADATA").decode()
        entry_points = archive.read(f"mtdsl-{mtdsl.__version__}.dist-info/entry_points.txt").decode()
    packaged = {f"mtdsl/{path.relative_to(SOURCE).as_posix()}" for path in SOURCE.rglob("*")
                if path.is_file() and path.suffix in (".lark", ".py", ".typed") and "__pycache__" not in path.parts}
    assert {"mtdsl/frontend/grammar.lark", "mtdsl/codegen/templates/train_loop.py", "mtdsl/py.typed"} <= packaged
    assert not packaged - names, f"missing from the wheel: {sorted(packaged - names)}"
    assert f"mtdsl-{mtdsl.__version__}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: Apache-2.0" in metadata and "Project-URL: Homepage, https://" in metadata
    requires = [Requirement(line.removeprefix("Requires-Dist: ")) for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")]
    assert {_normal(r.name) for r in requires} == set(_declared())
    assert not [r for r in requires if _normal(r.name) in UNCAPPED and any(s.operator in CAPS for s in r.specifier)]
    assert "mtdsl = mtdsl.cli:main" in entry_points


#: A spec whose one mistake is the spec's own: found without torch, timm or a backbone's metadata.
BROKEN = """model demo
input 3x64x64
backbone trunk = timm("resnet18")
dataset d = synthetic()
task a: classify(d) { classes = 3; head = linear(pool = median) }
"""


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_environment_and_its_command_runs_there(wheel, tmp_path):
    """The wheel with ``--no-deps``, then its declared dependencies but torch, torchvision and timm (installing
    torch takes most of a minute), from the package index, into a venv that sees no other site-packages. Then the
    installed ``mtdsl`` (not this checkout's) answers ``--help`` and checks specs, reading the packaged grammar."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python, script = venv / "bin" / "python", venv / "bin" / "mtdsl"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"mtdsl-{mtdsl.__version__}.dist-info/METADATA").decode()
    light = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
             if line.startswith("Requires-Dist: ") and "extra ==" not in line
             and _normal(Requirement(line.removeprefix("Requires-Dist: ")).name) not in UNCAPPED]
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check"]
    for arguments in (["--no-deps", str(wheel)], light):
        result = subprocess.run([*pip, *arguments], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"pip install {' '.join(arguments)}: {result.stderr[-3000:]}"

    where = subprocess.run([str(python), "-c", "import importlib.util, mtdsl; print(mtdsl.__file__); "
                            "print(importlib.util.find_spec('torch'))"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, check=True).stdout.split()
    assert where[0].startswith(str(venv)) and where[1] == "None"  # the installed package, and no torch to lean on
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert helped.returncode == 0 and "check" in helped.stdout and "export" in helped.stdout

    spec = tmp_path / "demo.mtl"
    spec.write_text(BROKEN, encoding="utf-8")
    (tmp_path / "syntax.mtl").write_text("model demo\ntask a classify(d)\n", encoding="utf-8")
    checked = subprocess.run([str(script), "check", str(spec), "syntax.mtl", "--json"], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)
    assert checked.returncode == 2, checked.stderr
    records = json.loads(checked.stdout)
    assert [(r["file"], r["line"], r["stage"]) for r in records] == [
        (str(spec), 5, "invalid value"), ("syntax.mtl", 2, "syntax error")]
    assert "'median' is not a valid value" in records[0]["message"] and "Traceback" not in checked.stderr
