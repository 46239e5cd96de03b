"""The training loop of one mtdsl spec: the thesis' Algorithm 1 in plain PyTorch.

mtdsl writes this file into a run folder as ``train.py``, with the block between
the ``# >>> spec`` and ``# <<< spec`` lines written from the spec: which spec it
is, how to run this file, and every decision the spec made, as constants. Run it
directly (``python train.py --out DIR [--resume] [--seed N] [--device cpu|cuda]``)
or through ``mtdsl train``, which runs this same file; under ``torchrun
--nproc_per_node N`` it trains with N processes (``docs/distributed.md``).

Each step follows Algorithm 1: a sampling strategy picks a stream (a dataset and
the tasks it labels), one batch of it runs through the tasks' paths, and their
losses are weighted, summed and back-propagated, with mixed precision
(``torch.autocast`` + ``GradScaler``). With several processes every rank draws
the same stream at each step and its share of that stream's batch; the stream's
DistributedDataParallel averages the gradients, and only rank 0 writes the run.

In mtdsl's source tree this file is the template, and its block holds the
constants of ``specs/quickstart.mtl``, so the template itself imports, lints and
runs as it stands.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
import uuid
from pathlib import Path

import torch
from rich.console import Console

from mtdsl.console import make_console
from mtdsl.errors import DataError, FailedElsewhere, MtdslError, TrainingError
from mtdsl.nn.losses import build_loss
from mtdsl.render.plots import plot_run
from mtdsl.spec.streams import Stream
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.loop.anchor_fit import coverage_lines
from mtdsl.train.loop.averaging import build_average
from mtdsl.train.loop.budget import Budget
from mtdsl.train.loop.early_stop import stop_early
from mtdsl.train.loop.evaluation import evaluate
from mtdsl.train.loop.freezing import Phase, apply_phase, phase_at
from mtdsl.train.loop.gradients import GradientNorms
from mtdsl.train.loop.optimizer import build_optimizer, set_learning_rate, use_phase_scales
from mtdsl.train.loop.precision import Precision, pick_device, resolve_precision
from mtdsl.train.loop.progress import EpochProgress
from mtdsl.train.loop.readout import StepReadout, scale_of, tally
from mtdsl.train.loop.runtime import (
    class_names,
    epoch_line,
    images_per_task,
    load_model_class,
    main_values,
    num_outputs,
    realised_ratios,
    seed_everything,
    stream_means,
    to_float,
)
from mtdsl.train.loop.sampling import TaskSampler
from mtdsl.train.loop.schedule import LearningRate
from mtdsl.train.loop.state import EpochPlace, RunState
from mtdsl.train.loop.training import Fingerprints, Training
from mtdsl.train.loop.weighting import build_weighting
from mtdsl.train.metrics.selection import mean_main
from mtdsl.train.parallel.replicas import StreamReplicas
from mtdsl.train.parallel.world import World
from mtdsl.train.run.checkpoint import inference_weights, load_checkpoint, save_checkpoint
from mtdsl.train.run.folder import RunFolder
from mtdsl.train.run.provenance import append_session, session_record
from mtdsl.train.run.report import MetricsLog, results_table, results_title, write_results
from mtdsl.train.run.showcase import write_prediction_images
from mtdsl.train.run.stop_signals import RunStopped, exit_code, stop_signals, stopped_message
from mtdsl.train.run.tracking import RunLog, track_option
from mtdsl.train.run.weights import save_weights

# --------------------------------------------------------------- the spec, as data

# >>> spec: written by mtdsl from the spec (change the spec and compile again, not this block)
from mtdsl.detection.setup import AnchorConfig, AnchorLabeler, DetectionSetup
from mtdsl.spec.data import SyntheticDataset
from mtdsl.spec.losses import BinaryCrossEntropyConfig, CrossEntropyConfig, DetectionLossConfig
from mtdsl.spec.training import AdamWConfig, ConstantWeighting, CosineScheduleConfig, ProportionalSampling
from mtdsl.train.data.resize import Resize

SPEC_NAME = 'quickstart'
SPEC_PATH = 'specs/quickstart.mtl'
MTDSL_VERSION = '0.1.0'
# Run this file, or the same loop through mtdsl:
RUN_COMMANDS = ('python train.py --out runs/quickstart',
                'mtdsl train specs/quickstart.mtl --out runs/quickstart')
SPEC_HASH = '594083c9077a5e3f'
MODEL_HASH = '28ae3970e8ead9f5'
SEED = 0
INPUT_SIZE = (64, 64)
NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Interpolation and evaluation crop: timm's for pretrained weights, else bilinear, the whole side.
RESIZE = Resize(interpolation='bilinear', crop_pct=1.0)
PRECISION = 'auto'
CHANNELS_LAST = False
COMPILE = False
WORKERS = 2
ON_CORRUPT = 'error'
# Experiment trackers fed from the records of metrics.jsonl (docs/tracking.md); --track replaces them.
TRACK = ()
DATASETS = {
    'shapes': SyntheticDataset(kind='synthetic', name='shapes', augment=None, count=2048, size=64, seed=0,
                               split=[0.7, 0.15, 0.15]),
}
TASKS = {
    'shape': TaskLabels(task='shape', kind='classify', classes=('circle', 'square', 'triangle'), label=None,
                        positive=None, partial=False),
    'colour': TaskLabels(task='colour', kind='classify', classes=('red', 'green', 'blue'), label=None,
                         positive=None, partial=False),
    'large': TaskLabels(task='large', kind='binary', classes=None, label=None, positive=None, partial=False),
    'objects': TaskLabels(task='objects', kind='detect', classes=('circle', 'square', 'triangle'), label=None,
                          positive=None, partial=False),
    'regions': TaskLabels(task='regions', kind='segment',
                          classes=('background', 'circle', 'square', 'triangle'), label=None, positive=None,
                          partial=False),
}
# Anchors, box matching and NMS of each detection task.
DETECTION = {
    'objects': DetectionSetup(anchors=AnchorConfig(min_level=3, max_level=5, num_scales=3,
                                                   aspect_ratios=((1.0, 1.0), (1.414214, 0.707107),
                                                                  (0.707107, 1.414214)), anchor_scale=2.0),
                              labeler=AnchorLabeler(match_threshold=0.5, unmatched_threshold=0.4,
                                                    force_match=True, num_classes=3), image_size=(64, 64),
                              score_threshold=0.05, nms_iou=0.5, max_detections=100),
}
LOSSES = {
    'shape': build_loss(CrossEntropyConfig(kind='cross_entropy', label_smoothing=0.0, dice=0.0)),
    'colour': build_loss(CrossEntropyConfig(kind='cross_entropy', label_smoothing=0.0, dice=0.0)),
    'large': build_loss(BinaryCrossEntropyConfig(kind='bce', pos_weight=None)),
    'objects': build_loss(DetectionLossConfig(kind='detection', alpha=0.25, gamma=2.0, box='huber',
                                              box_weight=50.0, delta=0.1), task_kind='detect',
                          detection=DETECTION['objects']),
    'regions': build_loss(CrossEntropyConfig(kind='cross_entropy', label_smoothing=0.0, dice=0.0),
                          task_kind='segment'),
}
LOSS_WEIGHTS = {
    'shape': 1.0,
    'colour': 1.0,
    'large': 1.0,
    'objects': 1.0,
    'regions': 1.0,
}
STREAMS = [
    Stream(('shapes',), tasks=('shape', 'colour', 'large', 'objects', 'regions'), batch_size=64),
]
SAMPLING = ProportionalSampling(kind='proportional')
SAMPLING_RATIOS = None
SAMPLING_TARGETS = None
# One epoch: "passes" is a pass over every stream's data (Σ|X_i|/B_i steps), "weighted" the thesis' Σ|X_i|α_i/B_i.
EPOCH = 'passes'
WEIGHTING = ConstantWeighting(kind='constant')
OPTIMIZER = AdamWConfig(kind='adamw', lr=0.003, weight_decay=0.05, betas=(0.9, 0.999))
SCHEDULE = CosineScheduleConfig(kind='cosine', min_lr=0.0)
WARMUP_EPOCHS = 0.0
GRAD_CLIP = None
# An average of the weights (none: off); validation, best.pt and the test read it when on.
EMA = None
# Stop after this many epochs without a better mean validation metric (None: never).
EARLY_STOP = None
PHASES = [
    Phase(name='all', epochs=7, frozen=(), lr=None, batchnorm='train', lr_scales=()),
    Phase(name='heads', epochs=1,
          frozen=('backbone.trunk.stem', 'backbone.trunk.stage1', 'backbone.trunk.stage2',
                  'backbone.trunk.stage3', 'backbone.trunk.stage4'), lr=None, batchnorm='train', lr_scales=()),
]
# <<< spec

HERE = Path(__file__).resolve().parent
EPOCHS = sum(phase.epochs for phase in PHASES)
FINGERPRINTS = Fingerprints(SPEC_NAME, SPEC_HASH, MODEL_HASH)  # what every checkpoint says it belongs to
# Steps between read-outs of the losses from the device (each read-out waits for the GPU; see readout.py).
READ_OUT_EVERY = 10


# ------------------------------------------------------------------------ the run

def train(out: Path = HERE, *, resume: bool = False, overwrite: bool = False, seed: int = SEED,
          device: str | None = None, workers: int = WORKERS, quiet: bool = False, budget: Budget | None = None,
          sync_batchnorm: bool = False, track: tuple[str, ...] | None = None) -> dict:
    """Train, validate every epoch, keep the best checkpoint, and test it. Returns the test results.

    The run folder is locked while training; one that already holds a run is refused unless
    ``resume`` continues it or ``overwrite`` deletes it first. SIGTERM stops the run as Ctrl-C does
    (a ``KeyboardInterrupt``). ``budget`` (``mtdsl compare --train``)
    sets each epoch's images or seconds instead of the spec's epoch length. A stop signal is acted
    on once the step in flight is done: the run's state there goes to the last checkpoint, and
    ``resume`` continues from that step (a second signal stops at once). Under torchrun, every
    process calls this; rank 0 holds the folder. ``sync_batchnorm`` (several CUDA processes) computes
    BatchNorm statistics over the whole batch instead of each process's share. ``track`` replaces the
    spec's trackers (``TRACK``), which get every record of ``metrics.jsonl``.
    """
    world = World.from_environment()
    chosen = world.device(pick_device(device))
    run = RunFolder(Path(out))
    with world.joined(chosen), world.on_main(run.claim(resume=resume, overwrite=overwrite)), \
            stop_signals(deferred=True), \
            RunLog(run, TRACK if track is None else track, enabled=world.is_main, spec_name=SPEC_NAME) as log:
        return run_epochs(run, world, resume=world.broadcast(resume and run.last.exists()), seed=seed,
                          device=chosen, workers=workers, quiet=quiet, budget=budget or Budget(),
                          sync_batchnorm=sync_batchnorm, log=log)


def run_epochs(run: RunFolder, world: World, *, resume: bool, seed: int, device: torch.device, workers: int,
               quiet: bool, budget: Budget, sync_batchnorm: bool = False, log: RunLog | None = None) -> dict:
    """Algorithm 1, epoch by epoch, from the start or from ``run``'s last checkpoint; then :func:`finish`."""
    budget.check(EPOCHS)
    precision = resolve_precision(PRECISION, device)
    quiet = quiet or not world.is_main  # one progress bar and one table per run
    console = make_console(quiet=quiet)
    seed_everything(seed)
    if world.is_main:
        append_session(run.provenance, session_record(seed=seed, world_size=world.size, device=str(device),
                                                      resume=resume))
    training = set_up(world, device, precision, seed=seed, workers=workers, resume=resume,
                      sync_batchnorm=sync_batchnorm, console=console, quiet=quiet)
    log = log or RunLog(run, enabled=world.is_main)  # metrics.jsonl, and the trackers that train() opened
    state = RunState(run=world.broadcast(uuid.uuid4().hex), seed=seed)
    if resume:
        state = resume_training(training, run, seed, console)
        if world.is_main:
            log.truncate_after(state.epoch)
    elif world.is_main:
        run.metrics.unlink(missing_ok=True)

    for epoch in range(state.epoch, EPOCHS):
        if stop_early(state, EARLY_STOP) or not budget.covers(epoch):  # a resumed run that had stopped early
            break
        phase = phase_at(PHASES, epoch)
        apply_phase(training.model, phase)
        use_phase_scales(training.optimizer, phase)
        training.stream_models.prepare()
        title = f"epoch {epoch + 1}/{EPOCHS} · {phase.name}"
        draws, place = train_epoch(training, state, epoch, title, run=run, budget=budget, precision=precision,
                                  console=console, quiet=quiet)
        validation_started = time.perf_counter()
        training.weighting.end_epoch(place.mean_losses())
        training.agree(epoch + 1)
        validation, mains = evaluate(training.evaluated, training.data, "val", OUTPUTS, precision, CHANNELS_LAST,
                                     decoders=DETECTION)
        training.sampler.observe(stream_means(validation, mains, STREAMS))
        mean = mean_main(validation, mains)
        is_best = state.end_epoch(epoch + 1, mean)
        checkpoint = training.checkpoint(state, FINGERPRINTS, validation)
        if world.is_main:
            log.append({"event": "train", "epoch": epoch + 1, "step": state.step, "phase": phase.name,
                        "lr": training.optimizer.param_groups[0]["lr"], "losses": place.mean_losses(),
                        "ratios": realised_ratios(draws, STREAMS),
                        "images": images_per_task(draws, STREAMS, training.data.shares),
                        "loss_weights": training.weighting.factors(),
                        "backbone_gradient_norm": training.gradient_norms.summary(), "processes": world.size,
                        "skipped_images": checkpoint["skipped_images"], "seconds": place.seconds,
                        "val_seconds": time.perf_counter() - validation_started})
            log.append({"event": "val", "epoch": epoch + 1, "metrics": validation,
                        "main": main_values(validation, mains), "mean": mean,
                        **({} if training.average is None else {"weights": "ema"})})
            save_checkpoint(checkpoint, run.last)
            if is_best:
                save_checkpoint(checkpoint, run.best)
        skipped = checkpoint["skipped_images"]
        scores = "  ".join(f"{task} {validation[task][mains[task]]:.3f}" for task in validation)
        console.print(f"{title}: {scores}  · mean {mean:.3f}"
                      + (f"  · {skipped} unreadable images skipped so far" if skipped else ""))
        if (reason := stop_early(state, EARLY_STOP)) is not None:
            console.print(reason)
            if world.is_main:
                log.append({"event": "early_stop", "epoch": epoch + 1, "best_epoch": state.best_epoch})
            break

    world.barrier()  # rank 0's checkpoints are on disk before any rank reads the best one
    training.data.close()  # the training streams' workers are done; the test reads through loaders of its own
    return finish(run, world, state, training.model, training.data, precision, console, log)


def set_up(world: World, device: torch.device, precision: Precision, *, seed: int, workers: int, resume: bool,
           sync_batchnorm: bool, console: Console, quiet: bool) -> Training:
    """The model, its data, and what trains it, as the spec's constants say."""
    model = build_model(device, load_pretrained=not resume)  # a resume's checkpoint replaces the weights
    if sync_batchnorm:
        model = world.sync_batchnorm(model, device)
    forward: torch.nn.Module = torch.compile(model) if COMPILE else model  # type: ignore[assignment]
    data = StreamLoaders(STREAMS, DATASETS, TASKS, image_size=INPUT_SIZE, mean=NORMALIZATION[0],
                         std=NORMALIZATION[1], seed=seed, workers=workers, on_corrupt=ON_CORRUPT, device=device,
                         world=world, resize=RESIZE)
    for line in data.describe() + (coverage_lines(DETECTION, data) if world.is_main else []):
        console.print(line)
    if quiet and world.is_main:  # a data warning is no progress bar or table: --quiet shows it too, on stderr
        for message in data.warnings:
            make_console(stderr=True).print(f"warning: {message}", style="yellow", markup=False, soft_wrap=True)
    weighting = build_weighting(WEIGHTING, LOSS_WEIGHTS).to(device)
    average = build_average(EMA, model)  # validation, best.pt and the test read it when the spec has one
    if average is not None:
        console.print(f"validating and testing the weights' moving average (ema, decay {average.decay:g})")
    sampler = TaskSampler.create(SAMPLING, sizes=data.sizes, batch_sizes=[s.batch_size for s in STREAMS],
                                 ratios_by_stream=SAMPLING_RATIOS, seed=seed, epoch=EPOCH,
                                 **({"targets": SAMPLING_TARGETS} if SAMPLING_TARGETS else {}))
    console.print(epoch_line(sampler.draws(0, progress=0.0), STREAMS, data.sizes, EPOCH))
    return Training(
        world=world, model=model, forward=forward,
        stream_models=StreamReplicas(model, forward, STREAMS, world, INPUT_SIZE, device),
        data=data, weighting=weighting,
        optimizer=build_optimizer(OPTIMIZER, model, weighting, PHASES),  # a group per lr_scale factor
        average=average,
        scaler=torch.amp.GradScaler(device.type, enabled=precision.needs_scaler),
        sampler=sampler,
        learning_rate=LearningRate(SCHEDULE, OPTIMIZER.lr, EPOCHS, WARMUP_EPOCHS, PHASES),
        gradient_norms=GradientNorms(model, [s.label for s in STREAMS]),
        readout=StepReadout(STREAMS, world, READ_OUT_EVERY),
    )


def resume_training(training: Training, run: RunFolder, seed: int, console: Console) -> RunState:
    """Every part as ``run``'s last checkpoint left it; the run's state there."""
    checkpoint = load_checkpoint(run.last, model_hash=MODEL_HASH, spec_hash=SPEC_HASH)
    saved_seed = checkpoint["state"].get("seed", seed)
    if saved_seed != seed:
        raise TrainingError(f"{run.root} was trained with seed {saved_seed}, not {seed}: "
                            "its batches and augmentations would not continue where they stopped",
                            hint=f"resume with --seed {saved_seed}")
    state = training.restore(checkpoint, seed)
    within = state.within_epoch
    console.print(f"resumed from {run.last} after epoch {state.epoch}"
                  + (f" and {within.steps} steps of epoch {state.epoch + 1}" if within else ""))
    return state


def train_epoch(training: Training, state: RunState, epoch: int, title: str, *, run: RunFolder, budget: Budget,
                precision: Precision, console: Console, quiet: bool) -> tuple[list[int], EpochPlace]:
    """One epoch's steps in the sampler's order: the steps it ran, and their losses and seconds.

    A stop signal saves the run after the step in flight and stops it (``RunStopped``); a run resumed
    from such a stop goes on after the steps it had finished.
    """
    world = training.world
    draws = training.sampler.draws(epoch, progress=epoch / EPOCHS, images=budget.images_at(epoch))
    place, state.within_epoch = state.within_epoch or EpochPlace.start(TASKS), None
    training.gradient_norms.load_state_dict(place.gradient_norms)
    started = time.perf_counter() - place.seconds
    with EpochProgress(title, len(draws), [s.label for s in STREAMS], enabled=not quiet, console=console) as bar:
        for position, stream_index in enumerate(draws):
            if position < place.steps:
                continue  # trained before the stop this run resumed from
            if position and budget.seconds is not None and \
                    world.any(budget.out_of_time(epoch, time.perf_counter() - started)):  # all ranks alike
                draws = draws[:position]
                break
            world.seed_step(state.seed, epoch, position)
            train_step(training, stream_index, progress=epoch + (position + 1) / len(draws), number=state.step,
                       precision=precision)
            state.step += 1
            if not training.readout.due(last=position + 1 == len(draws)):
                continue
            # The read-out: the host's one wait for the device in these steps; the ranks agree on a stop.
            steps, stop = training.readout.read()
            tally(steps, place.loss_sums, place.loss_counts, training.gradient_norms, bar, epoch=epoch + 1,
                  checkpoint=run.last)
            if stop is not None:  # SIGTERM or Ctrl-C: this step is done; save where the epoch is, and stop
                place.steps, place.seconds = position + 1, time.perf_counter() - started
                place.gradient_norms = training.gradient_norms.state_dict()
                state.within_epoch = place
                training.save_within_epoch(state, FINGERPRINTS, run.last)
                raise RunStopped(stop)
        # Steps a time budget cut off before their read-out.
        tally(training.readout.read()[0], place.loss_sums, place.loss_counts, training.gradient_norms, bar,
              epoch=epoch + 1, checkpoint=run.last)
    place.seconds = time.perf_counter() - started
    return draws, place


def train_step(training: Training, stream_index: int, *, progress: float, number: int, precision: Precision) -> None:
    """One step of Algorithm 1: a batch of one stream through its tasks, their weighted losses back-propagated.

    The losses and the backbone's gradient norm stay on the device until the next read-out.
    """
    stream, optimizer, scaler = STREAMS[stream_index], training.optimizer, training.scaler
    set_learning_rate(optimizer, training.learning_rate.at(progress))
    batch = training.data.next_batch(stream_index)
    images = batch["image"]
    if CHANNELS_LAST:
        images = images.contiguous(memory_format=torch.channels_last)
    model = training.stream_models[stream_index]  # its DistributedDataParallel when several processes train

    with torch.autocast(images.device.type, dtype=precision.dtype, enabled=precision.autocast):
        outputs = model(images)
        losses = {task: LOSSES[task](to_float(outputs[task]), batch["targets"][task]) for task in stream.tasks}
    total = training.weighting(losses)

    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    training.world.average_gradients(training.weighting.parameters())
    norm, scale = training.gradient_norms.measure(), scale_of(scaler)
    if GRAD_CLIP is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(training.model.parameters(), GRAD_CLIP)
    scaler.step(optimizer)
    scaler.update()
    training.readout.record(stream_index, number, losses, norm, scale)
    if training.average is not None:
        training.average.update(training.model, step=number + 1)


def finish(run: RunFolder, world: World, state: RunState, model: torch.nn.Module, data: StreamLoaders,
           precision: Precision, console: Console, log: RunLog | None = None) -> dict:
    """Test this run's best checkpoint; rank 0 saves and prints the results table and draws the plots."""
    best = load_checkpoint(run.best, model_hash=MODEL_HASH)
    if best["state"].get("run") != state.run:
        raise TrainingError(f"{run.best} was not written by this run", hint="train again with --overwrite")
    if not math.isfinite(best["state"]["best"]) and world.is_main:
        make_console(stderr=True).print(f"[yellow]note:[/] no epoch had a finite mean validation metric; "
                                   f"testing epoch {best['state']['epoch']}, the first")
    model.load_state_dict(inference_weights(best))  # the average's weights, when the run kept one
    results, mains = evaluate(model, data, "test", OUTPUTS, precision, CHANNELS_LAST, fallback="val",
                              decoders=DETECTION)
    splits = data.splits_by_task("test", "val")
    if not world.is_main:
        return {"splits": splits, "results": results, "mains": mains}
    log = log or RunLog(run)
    log.append({"event": "test", "splits": splits, "epoch": best["state"]["epoch"],
                "metrics": results, "main": main_values(results, mains),
                "mains": dict(mains), "mean": mean_main(results, mains)})
    written = write_results(results, mains, run.results)
    written.append(save_weights(inference_weights(best), run.weights, spec=SPEC_NAME, model_hash=MODEL_HASH,
                                epoch=best["state"]["epoch"], mtdsl=MTDSL_VERSION))  # the weights just tested
    title = results_title(SPEC_NAME, f"best epoch {best['state']['epoch']}", "test", splits)
    console.print(results_table(results, mains, title))
    written += plot_run(MetricsLog.read(run.metrics), run.plots)
    written += write_prediction_images(model, data, TASKS, DETECTION, run.root / "predictions", precision,
                                       mean=NORMALIZATION[0], std=NORMALIZATION[1])
    log.attach(written)  # plots, prediction images and tables, to the trackers
    for path in written:
        console.print(f"  {path}")
    return {"splits": splits, "results": results, "mains": mains}


def evaluate_checkpoint(checkpoint: Path, split: str = "test", *, device: str | None = None,
                        workers: int = WORKERS, quiet: bool = False) -> dict:
    """Evaluate a saved checkpoint on one split (val for datasets without a test split) and print the table."""
    chosen = pick_device(device)
    precision = resolve_precision(PRECISION, chosen)
    model = build_model(chosen, load_pretrained=False)
    model.load_state_dict(inference_weights(load_checkpoint(Path(checkpoint), model_hash=MODEL_HASH)))
    data = StreamLoaders(STREAMS, DATASETS, TASKS, image_size=INPUT_SIZE, mean=NORMALIZATION[0],
                         std=NORMALIZATION[1], seed=SEED, workers=workers, on_corrupt=ON_CORRUPT, device=chosen,
                         resize=RESIZE)
    fallback = "val" if split == "test" else None
    if not data.has_split(split) and fallback is None:
        raise DataError(f"no dataset of spec '{SPEC_NAME}' has a '{split}' split", hint="use --split val")
    results, mains = evaluate(model, data, split, OUTPUTS, precision, CHANNELS_LAST, fallback=fallback,
                              decoders=DETECTION)
    splits = data.splits_by_task(split, fallback)
    title = results_title(SPEC_NAME, str(checkpoint), split, splits)
    make_console(quiet=quiet).print(results_table(results, mains, title))
    return {"splits": splits, "results": results, "mains": mains}


def build_model(device: torch.device, load_pretrained: bool = True) -> torch.nn.Module:
    """The generated model; pretrained weights are skipped when a checkpoint will replace them anyway."""
    model = load_model_class(HERE / "model.py")(load_pretrained=load_pretrained).to(device)
    if CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    return model


OUTPUTS = {task: (labels.kind, num_outputs(labels), class_names(labels)) for task, labels in TASKS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Train spec {SPEC_NAME} (generated by mtdsl).")
    parser.add_argument("--out", default=str(HERE), help="run folder (default: this file's folder)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt")
    parser.add_argument("--overwrite", action="store_true", help="start again in a folder that holds a run")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--workers", type=int, default=WORKERS, help="data-loading processes per stream")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--sync-batchnorm", action="store_true",
                        help="under torchrun on GPUs: BatchNorm statistics over every process's share of a batch")
    parser.add_argument("--track", type=track_option, metavar="TRACKERS",
                        help="tensorboard, mlflow, both (tensorboard,mlflow) or none, instead of the spec's")
    args = parser.parse_args(argv)
    world = World.from_environment()
    try:
        train(Path(args.out), resume=args.resume, overwrite=args.overwrite, seed=args.seed, device=args.device,
              workers=args.workers, quiet=args.quiet, sync_batchnorm=args.sync_batchnorm, track=args.track)
    except FailedElsewhere:
        return 2  # the rank that failed printed why
    except MtdslError as error:
        print(world.label(error.render()), file=sys.stderr)
        return error.exit_status  # 1: the run failed on its way (a NaN), 2: a user error
    except KeyboardInterrupt as interrupt:
        if world.is_main:
            command = shlex.join([*world.launcher(), sys.argv[0], "--out", args.out]
                                 + ([f"--seed={args.seed}"] if args.seed != SEED else []))
            print(stopped_message(interrupt, RunFolder(Path(args.out)), command), file=sys.stderr)
        return exit_code(interrupt)
    return 0

if __name__ == "__main__":
    sys.exit(main())
