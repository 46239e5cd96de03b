"""``mtdsl``: compile, check, train, evaluate, compare, predict and export multi-task specs.

The commands are a thin layer over :mod:`mtdsl.api` where one fits (``compile`` and
``train`` go through :func:`mtdsl.api.compile` and :func:`mtdsl.api.train`). Every
command takes ``--quiet`` (no progress, per-epoch lines or summary tables) and ``--verbose`` (a progress
line every step off a terminal, and the traceback of an error). Off a terminal the
output is plain whole lines (:mod:`mtdsl.console`).

Exit statuses:

* 0: done;
* 1: a run failed on its own: a loss became NaN or infinite, or something unexpected
  raised (a bug, printed with its traceback);
* 2: a user error: a mistake in a spec, its data, a path or an option, printed as a
  located message with a fix and no traceback;
* 128 + N: stopped by signal N (130 for Ctrl-C, 143 for SIGTERM), the run kept to resume.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mtdsl import __version__
from mtdsl import console as consoles
from mtdsl.errors import ArtefactError, FailedElsewhere, MtdslError, SpecValueError

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK, EXIT_RUN_FAILED, EXIT_USER_ERROR = 0, 1, 2

#: Commands after which the process leaves through ``os._exit`` once its output is flushed: the
#: interpreter's teardown with torch and timm loaded takes over a second and does nothing these
#: commands need (they leave no worker processes, open files or threads behind).
EXIT_FAST = frozenset({"backbones", "check", "compile", "render", "eval", "predict", "export"})

#: Commands that run without the cyclic garbage collector: they finish within seconds and hold a
#: spec's worth of objects (modules built on the meta device, no data), while each full pass of
#: the collector walks the ~400,000 objects of torch and timm: importing the two took about 0.5 s
#: longer with it (docs/benchmarks.md, "CLI start-up"). Reference counting still frees the rest.
WITHOUT_CYCLIC_GC = frozenset({"backbones", "check", "compile", "render"})

#: Failures of the machine rather than of mtdsl (a full disk, a read-only folder): a message, not a traceback.
ENVIRONMENT_ERRORS = {
    errno.ENOSPC: "free space on that disk, or choose another --out",
    errno.EDQUOT: "free space within your disk quota, or choose another --out",
    errno.EFBIG: "the file outgrew a size limit (ulimit -f); raise it or choose another --out",
    errno.EROFS: "the file system is read-only; choose another --out",
    errno.EACCES: "check the folder's permissions, or choose another --out",
    errno.EPERM: "check the folder's permissions, or choose another --out",
}


def _overrides(pairs: list[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise SpecValueError(f"--set {pair!r} is not of the form NAME=VALUE", hint="e.g. --set data=../shared/data")
        result[name] = value
    return result


def _compile_out(args: argparse.Namespace) -> Path:
    """Where ``compile``/``render`` write: ``--out`` or ``build/<spec>``, never a training run's folder."""
    from mtdsl.train.run.folder import RunFolder

    out = Path(args.out) if args.out else Path("build") / Path(args.spec).stem
    found = RunFolder(out).run_files()
    if found:
        raise ArtefactError(
            f"{out} holds a training run ({', '.join(found)}); compiling into it would replace the model.py, "
            "train.py and diagram it was trained with",
            hint="choose another --out (mtdsl train writes a run's own artefacts)",
        )
    return out


def cmd_check(args: argparse.Namespace, console: Console) -> int:
    import json

    from rich.markup import escape

    from mtdsl.check_command import error_record, spec_error

    overrides = _overrides(args.set)
    errors = {spec: spec_error(spec, overrides) for spec in args.specs}
    if args.data:
        errors = {spec: error or _data_error(spec, overrides, console, quiet=args.json)
                  for spec, error in errors.items()}
    if args.json:
        print(json.dumps([error_record(error, spec) for spec, error in errors.items() if error], indent=2))
    else:
        for spec, error in errors.items():
            if error is not None:
                print(error.render(), file=sys.stderr)
            elif not args.quiet:
                console.print(f"[green]ok[/] {escape(spec)}", highlight=False)
    return EXIT_USER_ERROR if any(errors.values()) else 0


def _data_error(spec: str, overrides: dict[str, str], console: Console, *, quiet: bool):
    """Open the spec's datasets (``check --data``): print what training would say first, or return the error."""
    from rich.markup import escape

    from mtdsl.check_command import data_report
    from mtdsl.errors import MtdslError

    try:
        lines = data_report(spec, overrides)
    except MtdslError as error:
        return error
    if not quiet:
        for line in lines:
            console.print(f"  {line if line.startswith('[yellow]') else escape(line)}", soft_wrap=True, highlight=False)
    return None


def cmd_backbones(args: argparse.Namespace, console: Console) -> int:
    """List timm models matching a pattern, with their segments (``name channels/stride``), or why they are refused."""
    import json

    from mtdsl.graph import backbone_cache, backbone_table
    from mtdsl.graph.backbones import listed_info, matching_models

    names = backbone_table.matching(args.pattern)
    if names is None:
        names = matching_models(args.pattern)
    unread = sum(backbone_cache.read(name) is None for name in names)
    if unread > 1 and not args.quiet:
        print(f"reading {unread} models from timm on the meta device (once: kept in {backbone_cache.cache_file()})",
              file=sys.stderr, flush=True)
    infos = [listed_info(name) for name in names]
    shown = [info for info in infos if args.all or not info.refusal]
    if args.json:
        print(json.dumps([info.to_record() for info in shown], indent=2))
        return 0
    width = max((len(info.model) for info in shown), default=0)
    for info in shown:
        if info.refusal:
            print(f"{info.model:<{width}}  {info.family or '?'}: refused: {info.refusal}")
            continue
        segments = "  ".join(f"{s.name} {s.channels}/{s.reduction}" for s in info.segments)
        layout = "" if info.layout == "NCHW" or info.whole else f" ({info.layout} inside)"
        whole = ", runs whole (no branch inside)" if info.whole else ""
        print(f"{info.model:<{width}}  {info.family}{layout}{whole}: {segments}")
    if not args.quiet:
        refused = len(infos) - sum(not info.refusal for info in infos)
        more = " (--all lists them with the reason)" if refused and not args.all else ""
        wholes = sum(info.whole for info in infos)
        usable = f"{len(infos) - refused} of {len(infos)} models matching {args.pattern!r}"
        if wholes:
            print(f"{usable} have segments (segment channels/stride): {len(infos) - refused - wholes} cut, {wholes} "
                  f"run whole (no branch inside); {refused} refused{more}", file=sys.stderr)
        else:
            print(f"{usable} can be cut into segments (segment channels/stride); {refused} refused{more}",
                  file=sys.stderr)
    return 0


def cmd_compile(args: argparse.Namespace, console: Console) -> int:
    from mtdsl.api import compile
    from mtdsl.compiler import ARTEFACTS, write_artefacts
    from mtdsl.render.dot import MISSING_DOT_HINT, dot_available
    from mtdsl.render.summary import phase_table, summary_table

    out = _compile_out(args)
    with console.status(f"compiling {args.spec}"):
        compilation = write_artefacts(compile(args.spec, **_overrides(args.set)), out, ARTEFACTS)
    summary = compilation.summary
    assert summary is not None  # write_artefacts wrote it
    if not args.quiet:
        console.print(summary_table(summary))
    if phase_table(summary) is not None and not args.quiet:
        console.print(phase_table(summary))
    console.print(f"[green]compiled[/] {args.spec} → {out}/")
    for path in compilation.written:
        console.print(f"  {path}")
    if not dot_available():
        console.print(f"[yellow]note:[/] only architecture.dot was written; {MISSING_DOT_HINT}")
    return 0


def cmd_render(args: argparse.Namespace, console: Console) -> int:
    from mtdsl.compiler import compile_file, write_architecture, write_artefacts
    from mtdsl.render.dot import MISSING_DOT_HINT, dot_available

    out = _compile_out(args)
    compilation = write_artefacts(compile_file(args.spec, _overrides(args.set)), out, (write_architecture,))
    for path in compilation.written:
        console.print(f"  {path}")
    if not dot_available():
        console.print(f"[yellow]note:[/] only the .dot file was written; {MISSING_DOT_HINT}")
    return 0


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    from mtdsl.api import compile, train
    from mtdsl.train.loop.precision import pick_device
    from mtdsl.train.parallel.world import World
    from mtdsl.train.run.folder import RunFolder
    from mtdsl.train.run.stop_signals import exit_code, stop_signals, stopped_message

    world = World.from_environment()
    if args.nproc > 1:
        return _run_under_torchrun(args, world)
    pick_device(args.device)  # a wrong --device is refused before anything is written
    spec_path = Path(args.spec)
    run = RunFolder(Path(args.out) if args.out else Path("runs") / spec_path.stem)
    compilation = compile(spec_path, **_overrides(args.set))
    if args.track is not None:  # --track replaces the spec's trackers
        from mtdsl.train.run.tracking import with_trackers

        compilation.spec = with_trackers(compilation.spec, args.track)
    with stop_signals():
        try:
            train(compilation, run.root, resume=args.resume, overwrite=args.overwrite, seed=args.seed,
                  device=args.device, workers=args.workers, quiet=args.quiet or not world.is_main,
                  announce=_announcer(console), sync_batchnorm=args.sync_batchnorm)
        except KeyboardInterrupt as interrupt:
            if world.is_main:
                command = shlex.join([*_launcher(world), "train", str(spec_path), "--out", str(run.root)]
                                     + [f"--set={pair}" for pair in args.set]
                                     + ([f"--seed={args.seed}"] if args.seed is not None else [])
                                     + ([f"--track={','.join(args.track) or 'none'}"] if args.track is not None
                                        else []))
                console.print(stopped_message(interrupt, run, command), style="yellow", markup=False,
                              highlight=False)
            return exit_code(interrupt)
    if world.is_main:
        console.print(f"[green]trained[/] {spec_path}: run folder {run.root}/ (diagram "
                      f"{run.root / 'architecture.svg'}, plots {run.root / 'plots'}/)")
    return 0


def _launcher(world) -> list[str]:
    """The start of a command that runs mtdsl as this process was run: ``mtdsl``, or torchrun with its sizes."""
    return ["mtdsl"] if not world.distributed else [*world.launcher(), "-m", "mtdsl"]


def _run_under_torchrun(args: argparse.Namespace, world) -> int:
    """``mtdsl train --nproc N``: this same command, run by torchrun in N processes on this machine.

    torchrun runs in this process, so a failed rank ends in one line here (the rank printed its own
    error) rather than in torchrun's traceback, and the exit status is the failed rank's.
    """
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    from mtdsl.train.parallel.failures import failure_line

    if world.distributed:
        raise SpecValueError("--nproc starts torchrun, but this process was itself started by torchrun",
                             hint="leave out --nproc under torchrun: its --nproc_per_node sets the processes")
    launch = get_args_parser().parse_args(["--standalone", "--nproc_per_node", str(args.nproc), "-m", "mtdsl",
                                           *_without_nproc(sys.argv[1:] if args.argv is None else args.argv)])
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # the ranks say what failed
    try:
        torchrun(launch)
    except ChildFailedError as failed:
        rank, first = failed.get_first_failure()
        line, status = failure_line(rank, first.exitcode, args.nproc)  # a killed rank printed nothing: say so
        print(line, file=sys.stderr)
        return status
    except SignalException as stopped:
        return 128 + stopped.sigval
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            kept.append(word)
    return kept


def _announcer(console: Console):
    return lambda line: console.print(line, markup=False, highlight=False)


def cmd_eval(args: argparse.Namespace, console: Console) -> int:
    import tempfile

    from mtdsl.compiler import compile_file, write_artefacts, write_model_source, write_train_source
    from mtdsl.train.loop.runtime import load_generated

    compilation = compile_file(args.spec, _overrides(args.set))
    out = Path(args.out) if args.out else None
    if out is not None:
        _writable_folder(out)  # before minutes of evaluation, not after
    with tempfile.TemporaryDirectory(prefix="mtdsl-eval-") as folder:
        write_artefacts(compilation, folder, (write_model_source, write_train_source))
        loop = load_generated(Path(folder) / "train.py")
        outcome = loop.evaluate_checkpoint(Path(args.checkpoint), args.split, device=args.device,
                                           workers=loop.WORKERS if args.workers is None else args.workers,
                                           quiet=args.quiet)
    if out is not None:
        from mtdsl.train.run.report import write_results

        for path in write_results(outcome["results"], outcome["mains"], out / args.split):
            console.print(f"  {path}", markup=False, highlight=False)
    return 0


def _writable_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArtefactError(f"cannot create output folder {out}: {error.strerror or error}",
                            hint="choose another --out") from None


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from mtdsl.compare import compare
    from mtdsl.compare.report import compare_table, metric_table, write_compare
    from mtdsl.compiler import compile_file
    from mtdsl.train.loop.precision import pick_device
    from mtdsl.train.run.stop_signals import refuse_multi_process_launch

    refuse_multi_process_launch("mtdsl compare")  # N processes would time and train the same models side by side
    if not args.train and (args.resume or args.overwrite):
        raise ArtefactError("--resume and --overwrite apply to the runs of --train", hint="add --train")
    device = pick_device(args.device)
    spec_path = Path(args.spec)
    out = Path(args.out) if args.out else Path("build") / spec_path.stem
    compilation = compile_file(spec_path, _overrides(args.set))
    _writable_folder(out)  # before minutes of timing, not after
    with console.status(f"timing {compilation.spec.name} and its single-task models on {device}"):
        result = compare(compilation.spec, device=device, batch_sizes=args.batch_sizes, runs=args.runs,
                         graph=compilation.graph)
    console.print(compare_table(result))
    if args.train:
        training = _train_for_compare(args, compilation, spec_path, out, console)
        if isinstance(training, int):
            return training
        result["training"] = training
        console.print(metric_table(result))
    for path in write_compare(result, out):
        console.print(f"  {path}", markup=False, highlight=False)
    return 0


def _train_for_compare(args: argparse.Namespace, compilation, spec_path: Path, out: Path,
                       console: Console) -> dict | int:
    """Train every model of the comparison into ``out/runs/``: what they scored, or the exit code of a stop."""
    from mtdsl.compare.training import train_all
    from mtdsl.train.run.stop_signals import RunStopped, exit_code, stop_signals

    with stop_signals():
        try:
            return train_all(compilation, out, budget=args.budget, seed=args.seed, device=args.device,
                                      workers=args.workers, resume=args.resume, overwrite=args.overwrite,
                                      quiet=args.quiet, announce=_announcer(console))
        except KeyboardInterrupt as interrupt:
            command = shlex.join(["mtdsl", "compare", str(spec_path), "--train", "--resume", "--out", str(out),
                                  f"--budget={args.budget}"] + [f"--set={pair}" for pair in args.set]
                                 + ([f"--seed={args.seed}"] if args.seed is not None else []))
            cause = f"stopped by {interrupt.name}" if isinstance(interrupt, RunStopped) else "interrupted"
            console.print(f"{cause}: finished runs and the last epoch of the one in progress are kept in "
                          f"{out / 'runs'}/; continue with: {command}", style="yellow", markup=False, highlight=False)
            return exit_code(interrupt)


def _batch_sizes(text: str) -> list[int]:
    """``1,32`` → [1, 32]."""
    try:
        sizes = [_positive(part) for part in text.split(",")]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"batch sizes are whole numbers joined by commas, e.g. 1,32 "
                                         f"({error})") from None
    return sizes


def cmd_predict(args: argparse.Namespace, console: Console) -> int:
    from mtdsl.compiler import compile_file
    from mtdsl.predict import predict, summary_lines

    spec_path = Path(args.spec)
    out = Path(args.out) if args.out else Path("predictions") / spec_path.stem
    compilation = compile_file(spec_path, _overrides(args.set))
    report = predict(compilation.spec, compilation.graph, Path(args.checkpoint), args.images, out,
                     device=args.device, tasks=args.tasks, batch_size=args.batch_size, progress=not args.quiet)
    for line in summary_lines(report):
        console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"[green]predicted[/] {len(report.images)} image{'s' if len(report.images) != 1 else ''} "
                  f"with {args.checkpoint} → {out}/")
    # Every path for a few images; for many, the JSON files and a count of the PNGs beside them.
    shown = report.written if len(report.written) <= 12 else [p for p in report.written if p.suffix == ".json"]
    for path in shown:
        console.print(f"  {path}", markup=False, highlight=False)
    if len(shown) < len(report.written):
        console.print(f"  … and {len(report.written) - len(shown)} drawn images and masks (PNG) in {out}/")
    return 0




def cmd_export(args: argparse.Namespace, console: Console) -> int:
    from mtdsl.compiler import compile_file
    from mtdsl.export import export_model

    spec_path = Path(args.spec)
    out = Path(args.out) if args.out else Path("exports") / spec_path.stem
    compilation = compile_file(spec_path, _overrides(args.set))
    tasks = [task.strip() for task in args.tasks.split(",")] if args.tasks else None
    written = export_model(compilation, args.checkpoint, out, format=args.format, tasks=tasks,
                           postprocess=args.postprocess, overwrite=args.overwrite, nms=args.nms)
    console.print(f"[green]exported[/] {spec_path} ({args.format}) → {out}/")
    for path in written:
        console.print(f"  {path}", markup=False, highlight=False)
    return 0


def _trackers(text: str) -> tuple[str, ...]:
    from mtdsl.train.run.tracking import track_option

    return track_option(text)


def _count(text: str) -> int:
    """A whole number >= 0 (``--workers``)."""
    return _bounded_int(text, 0, 1024)


def _positive(text: str) -> int:
    """A whole number >= 1 (``--batch-size``)."""
    return _bounded_int(text, 1, 65536)


def _seed(text: str) -> int:
    from mtdsl.spec.fields import MAX_SEED

    return _bounded_int(text, 0, MAX_SEED)


def _bounded_int(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{value} is out of range: it must be from {low} to {high}")
    return value


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="mtdsl", description="Compile multi-task vision specs (.mtl) into PyTorch.")
    main.add_argument("--version", action="version", version=f"mtdsl {__version__}")
    commands = main.add_subparsers(dest="command", required=True)
    talk = argparse.ArgumentParser(add_help=False)
    levels = talk.add_mutually_exclusive_group()
    levels.add_argument("--quiet", action="store_true",
                        help="no progress or per-epoch lines, no summary tables or 'ok' lines; results and errors stay")
    levels.add_argument("--verbose", action="store_true",
                        help="a progress line every step when not on a terminal, and an error's traceback")

    def spec_command(name: str, help_text: str, out_default: str = "build/<spec name>",
                     out_help: str | None = None) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text, parents=[talk])
        command.add_argument("spec", help="path to a .mtl spec")
        command.add_argument("--out", help=out_help or f"output folder (default: {out_default})")
        command.add_argument(
            "--set", action="append", default=[], metavar="NAME=VALUE", help="override a 'let' variable (repeatable)"
        )
        return command

    checking = commands.add_parser("check", help="parse, validate and resolve specs without building the model "
                                   "(exit 0: all fine, 2: an error)", parents=[talk],
                                   description="parse, validate and resolve "
                                   "specs (every check compile makes) without building the model, and without "
                                   "torch once each backbone's metadata is cached")
    checking.set_defaults(run=cmd_check)
    checking.add_argument("specs", nargs="+", metavar="SPEC", help="paths to .mtl specs")
    checking.add_argument("--data", action="store_true", help="also open every dataset the spec names (paths, "
                          "annotation files, classes, splits) and measure each detect task's anchors against its "
                          "training boxes; imports torch")
    checking.add_argument("--json", action="store_true", help="print the errors as a JSON list of {file, line, col, "
                          "end_line, end_col, stage, message, expected, hint} objects")
    checking.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a 'let' variable (repeatable)"
    )
    listing = commands.add_parser(
        "backbones", parents=[talk], help="list the timm models a backbone can name, with their segments",
        description="list the timm models matching PATTERN that mtdsl can cut into segments, each with its "
        "segments as NAME CHANNELS/STRIDE (the names branch and tap take); reads timm once per model, on the "
        "meta device, and keeps what it read in the backbone cache",
    )
    listing.set_defaults(run=cmd_backbones)
    listing.add_argument("pattern", nargs="?", default="*", help="a shell-style pattern over timm's names: "
                         "'convnext*', 'resnet18.*' (pretrained tags), or a hub name hf-hub:ORG/NAME (default: all)")
    listing.add_argument("--all", action="store_true", help="also list the models that cannot be cut, with why")
    listing.add_argument("--json", action="store_true", help="print every listed model's metadata as JSON")
    spec_command("compile", "write model.py, graph.json, the diagram and summary.json").set_defaults(run=cmd_compile)
    spec_command("render", "draw the sharing graph (architecture.dot, .svg, .png)").set_defaults(run=cmd_render)

    train = spec_command(
        "train", "compile, then train with the generated loop (train.py) into a run folder", "runs/<spec name>"
    )
    train.set_defaults(run=cmd_train)
    train.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    train.add_argument("--overwrite", action="store_true", help="start again in a folder that already holds a run")
    train.add_argument("--seed", type=_seed, help="random seed (default: the spec's train { seed })")
    train.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    train.add_argument("--workers", type=_count, help="data-loading processes per stream (default: the spec's)")
    train.add_argument("--nproc", type=_positive, default=1,
                       help="train with N processes on this machine, through torchrun (docs/distributed.md)")
    train.add_argument("--sync-batchnorm", action="store_true",
                       help="with several CUDA processes: BatchNorm statistics over the whole batch, not each share")
    train.add_argument("--track", type=_trackers, metavar="TRACKERS",
                       help="experiment trackers instead of the spec's train { track }: tensorboard, mlflow, "
                       "tensorboard,mlflow or none (docs/tracking.md)")

    evaluate = spec_command("eval", "evaluate a checkpoint of this spec on one split and print the table",
                            out_help="also write the results as OUT/SPLIT.json and OUT/SPLIT.md (default: none)")
    evaluate.set_defaults(run=cmd_eval)
    evaluate.add_argument("--checkpoint", required=True, help="a .pt file written by mtdsl train")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--device", help="cpu, cuda or cuda:N")
    evaluate.add_argument("--workers", type=_count, help="data-loading processes")

    comparing = spec_command("compare", "one multi-task model against each task's single-task model: parameters, "
                             "FLOPs, latency and peak memory (compare.json, compare.md, compare.png)")
    comparing.set_defaults(run=cmd_compare)
    comparing.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    comparing.add_argument("--batch-sizes", type=_batch_sizes, default=[1, 32], metavar="B,B",
                           help="batch sizes to time (default: 1,32)")
    comparing.add_argument("--runs", type=lambda text: _bounded_int(text, 1, 10_000), default=20,
                           help="timed passes per model and batch size, after warm-up (default: 20)")
    comparing.add_argument("--train", action="store_true",
                           help="also train the multi-task model and every single-task model into OUT/runs/ and "
                           "compare each task's test metric")
    comparing.add_argument("--budget", choices=["images", "seconds"], default="images",
                           help="what --train holds equal: each single-task model sees as many images as its task "
                           "did in the multi-task run (default), or together they train as long")
    comparing.add_argument("--seed", type=_seed, help="random seed of every run (default: the spec's train { seed })")
    comparing.add_argument("--workers", type=_count, help="data-loading processes per stream (default: the spec's)")
    comparing.add_argument("--resume", action="store_true", help="--train: read back finished runs, continue the rest")
    comparing.add_argument("--overwrite", action="store_true", help="--train: delete the runs in OUT/runs/ first")

    predicting = spec_command("predict", "run a checkpoint on images: drawn PNGs, masks, predictions.json and "
                              "detections.json (COCO results)", "predictions/<spec name>")
    predicting.set_defaults(run=cmd_predict)
    predicting.add_argument("images", nargs="+", metavar="IMAGES", help="image files, or folders of images")
    predicting.add_argument("--checkpoint", required=True, help="a .pt file written by mtdsl train")
    predicting.add_argument("--tasks", help="comma-separated tasks to run (default: all)")
    predicting.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    predicting.add_argument("--batch-size", type=_positive, default=8, help="images per forward pass (default: 8)")

    exporting = spec_command("export", "write a trained model as ONNX, a torch.export program or TorchScript, with "
                             "one named output per task and a model.json sidecar", "exports/<spec name>")
    exporting.set_defaults(run=cmd_export)
    exporting.add_argument("--checkpoint", required=True, help="a .pt file written by mtdsl train")
    exporting.add_argument("--format", choices=["onnx", "torch.export", "torchscript"], default="onnx")
    exporting.add_argument("--tasks", help="comma-separated tasks to export (default: all)")
    exporting.add_argument("--postprocess", action="store_true",
                           help="probabilities instead of logits, and detection boxes decoded against the anchors")
    exporting.add_argument("--nms", action="store_true",
                           help="--postprocess, and class-wise NMS inside the model: each detect task returns its "
                           "best boxes, scores, classes and their count (docs/export.md)")
    exporting.add_argument("--overwrite", action="store_true", help="replace an export already in --out")
    return main


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status (see the module's docstring).

    Called without ``argv`` (the ``mtdsl`` script, ``python -m mtdsl``), a command of
    :data:`EXIT_FAST` that returns ends the process itself, through ``os._exit`` once
    stdout and stderr are flushed, rather than wait for the interpreter's teardown.
    """
    _paths_print_as_given()
    args = parser().parse_args(argv)
    args.argv = argv
    consoles.set_verbosity(consoles.QUIET if args.quiet else consoles.VERBOSE if args.verbose else consoles.NORMAL)
    with _cyclic_gc_paused(args.command in WITHOUT_CYCLIC_GC):
        code = _run(args, consoles.make_console())
    if argv is None and args.command in EXIT_FAST:
        _exit_now(code)
    return code


def _run(args: argparse.Namespace, console: Console) -> int:
    try:
        return args.run(args, console)
    except FailedElsewhere:
        return EXIT_USER_ERROR  # the process that failed printed why
    except RuntimeError as error:
        from mtdsl.train.parallel.failures import lost_peer

        reason = lost_peer(error)
        if os.environ.get("WORLD_SIZE", "1") == "1" or reason is None:
            raise
        # Another process died (its launcher names it); this one's traceback would read as the cause.
        print(f"process {os.environ.get('RANK', '?')} of {os.environ['WORLD_SIZE']} stopped: lost contact with "
              f"another process of the run, which stopped or was killed ({reason})", file=sys.stderr)
        return EXIT_USER_ERROR
    except MtdslError as error:
        _say_whole(_rank_label(error.render()))
        if args.verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        return error.exit_status
    except OSError as error:
        if error.errno not in ENVIRONMENT_ERRORS:
            raise
        where = f" {error.filename}" if error.filename else " a file"  # a read can fail so too (EACCES)
        print(ArtefactError(f"cannot use{where}: {error.strerror}", hint=ENVIRONMENT_ERRORS[error.errno]).render(),
              file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _cyclic_gc_paused(paused: bool) -> Iterator[None]:
    """Run the block without the cyclic garbage collector when ``paused``, then restore it as it was."""
    was_enabled = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _exit_now(code: int) -> None:
    """End the process with ``code`` at once, once what it printed is out (a closed pipe is no error)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _paths_print_as_given() -> None:
    """Let stdout and stderr print any path the command line can name.

    A path byte that is not UTF-8 reaches Python as a lone surrogate; a stream that encodes
    strictly (``PYTHONIOENCODING=utf-8``, a locale other than C) fails on it with a traceback
    in the middle of a run. ``surrogateescape`` writes the original byte back instead.
    """
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="surrogateescape")


def _say_whole(message: str) -> None:
    """Write ``message`` and its newline to stderr in one write: ``print`` writes them apart, and the ranks of a
    run share one stderr, so another rank's line could land between a message and its newline."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _rank_label(message: str) -> str:
    """``message`` after ``rank N:`` in a process torchrun started other than rank 0."""
    rank = os.environ.get("RANK", "0").strip() or "0"
    alone = os.environ.get("WORLD_SIZE", "1").strip() in ("", "1")
    return message if rank == "0" or alone else f"rank {rank}: {message}"


if __name__ == "__main__":
    sys.exit(main())
