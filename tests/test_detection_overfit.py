"""The sanity check of every detection codebase: a detector that cannot memorise 32 images cannot learn.

One detect task (EfficientNet-Lite0 with ImageNet weights, EfficientDet-D0's
BiFPN and head, 160 px) trains on 32 photos of ``../shared/data/oxford-pets-3class``
with their pet-head boxes and is scored on those same photos. Measured on the
2-core CPU machine (30 epochs of 4 steps, one thread): AdamW at 1e-3 reached
AP50 0.79 (0.92 only after 80 epochs), at 3e-3 0.92, at 1e-2 0.95; effdet's own
Lite0 at 1e-3 on the same batches 0.41. The randomly initialised neck and head
are what needs the higher rate (docs/experiments.md (e)). 30 epochs at 1e-2 gave
0.88–0.95 depending on the number of torch threads (their sums round
differently), so the test trains 40 (AP50 1.0 with two threads, 2.4 minutes).
"""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA, requires_shared_data

from mtdsl.cli import main
from mtdsl.train.loop.runtime import load_generated

PETS = SHARED_DATA / "oxford-pets-3class"

SPEC = """model overfit
input 3x160x160
backbone trunk = timm("tf_efficientnet_lite0", pretrained = imagenet)
neck pyramid   = bifpn(trunk, scale = 0)
dataset heads  = coco("{annotations}", images = "{images}", one_class = "pet", keep_empty = false, split = 0.97/0.03)
task pet: detect(heads) {{
    classes = [pet]
    head    = efficientdet(scale = 0)
}}
train {{
    batch_size = 8
    optimizer  = adamw(lr = 0.01)
    schedule   = cosine()
    lr_scale   = none   # as measured (docs/experiments.md (e)), before the fine-tuning defaults
    batchnorm  = train
    phase all {{ epochs = 40 }}
}}
"""


def first_boxed_images(count: int) -> dict:
    """The COCO file cut to ``count`` images with a head box, picked evenly over the 296 boxed photos."""
    coco = json.loads((PETS / "annotations" / "instances_heads.json").read_text())
    boxed = sorted({annotation["image_id"] for annotation in coco["annotations"]})
    keep = set(boxed[:: len(boxed) // count][:count])
    return {
        "images": [image for image in coco["images"] if image["id"] in keep],
        "annotations": [annotation for annotation in coco["annotations"] if annotation["image_id"] in keep],
        "categories": coco["categories"],
    }


@pytest.mark.data
@requires_shared_data("oxford-pets-3class")
def test_a_pet_head_detector_memorises_32_photos(tmp_path):
    annotations = tmp_path / "heads32.json"
    chosen = first_boxed_images(32)
    annotations.write_text(json.dumps(chosen))
    images = tmp_path / "images"  # the 32 photos alone, so the ratio split (drawn by photo over its folder) is theirs
    images.mkdir()
    for image in chosen["images"]:
        (images / image["file_name"]).symlink_to(PETS / "images" / image["file_name"])
    spec = tmp_path / "overfit.mtl"
    spec.write_text(SPEC.format(annotations=annotations, images=images))
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--workers", "0", "--quiet"]) == 0
    loop = load_generated(run / "train.py")
    scores = loop.evaluate_checkpoint(run / "checkpoints" / "last.pt", "train", workers=0, quiet=True)
    pet = scores["results"]["pet"]
    print(pet)
    assert pet["AP50"] >= 0.9, pet
    assert pet["top_box_accuracy"] >= 0.9, pet
