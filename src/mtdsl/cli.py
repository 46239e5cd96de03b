"""``mtdsl``: compile and render multi-task specs.

User mistakes are printed as ``file:line:col`` errors without a traceback, and
the process exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from mtdsl import __version__
from mtdsl.errors import MtdslError, SpecValueError

EXIT_USER_ERROR = 2


def _overrides(pairs: list[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise SpecValueError(f"--set {pair!r} is not of the form NAME=VALUE", hint="e.g. --set data=../shared/data")
        result[name] = value
    return result


def _default_out(spec: Path) -> Path:
    return Path("build") / spec.stem


def cmd_compile(args: argparse.Namespace, console: Console) -> int:
    from mtdsl.compiler import ARTEFACTS, compile_file, write_artefacts
    from mtdsl.render.dot import MISSING_DOT_HINT, dot_available
    from mtdsl.render.summary import summary_table

    out = Path(args.out) if args.out else _default_out(Path(args.spec))
    with console.status(f"compiling {args.spec}"):
        compilation = write_artefacts(compile_file(args.spec, _overrides(args.set)), out, ARTEFACTS)
    console.print(summary_table(compilation.summary))
    console.print(f"[green]compiled[/] {args.spec} → {out}/")
    for path in compilation.written:
        console.print(f"  {path}")
    if not dot_available():
        console.print(f"[yellow]note:[/] only architecture.dot was written; {MISSING_DOT_HINT}")
    return 0


def cmd_render(args: argparse.Namespace, console: Console) -> int:
    from mtdsl.compiler import compile_file, write_architecture, write_artefacts
    from mtdsl.render.dot import MISSING_DOT_HINT, dot_available

    out = Path(args.out) if args.out else _default_out(Path(args.spec))
    compilation = write_artefacts(compile_file(args.spec, _overrides(args.set)), out, (write_architecture,))
    for path in compilation.written:
        console.print(f"  {path}")
    if not dot_available():
        console.print(f"[yellow]note:[/] only the .dot file was written; {MISSING_DOT_HINT}")
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="mtdsl", description="Compile multi-task vision specs (.mtl) into PyTorch.")
    main.add_argument("--version", action="version", version=f"mtdsl {__version__}")
    commands = main.add_subparsers(dest="command", required=True)

    def spec_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("spec", help="path to a .mtl spec")
        command.add_argument("--out", help="output folder (default: build/<spec name>)")
        command.add_argument(
            "--set", action="append", default=[], metavar="NAME=VALUE", help="override a 'let' variable (repeatable)"
        )
        return command

    spec_command("compile", "write model.py, graph.json, the diagram and summary.json").set_defaults(run=cmd_compile)
    spec_command("render", "draw the sharing graph (architecture.dot, .svg, .png)").set_defaults(run=cmd_render)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console()
    try:
        return args.run(args, console)
    except MtdslError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
