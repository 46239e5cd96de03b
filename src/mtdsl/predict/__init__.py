"""A trained checkpoint run on image files: drawn images, masks and JSON (``mtdsl predict``).

Per batch of images, each task sees its images the way it saw them in training (detect and
segment tasks, and the image-label tasks trained in the same batches as one, get the
letterbox; image-label tasks trained on their own get a resize and centre crop, as when
they are evaluated), then:

* classify, binary, multilabel: a class and its probability (softmax), a probability
  (sigmoid), the labels over 0.5;
* detect: boxes in original-image pixels. A detect task with ``crops = [breed]`` is the
  recursive detector (thesis §6.5, Fig. 6.4b): each box is cut from the original image,
  resized to the model's input, and run through the same model for the crop tasks, which
  label it;
* segment: a class per original pixel (argmax at network size, the letterboxed region cut
  out and resized back with nearest neighbour).

``out_dir`` receives ``predictions.json`` (everything, per image), ``detections.json``
(COCO results, with the training COCO file's category and image ids where it has them:
:mod:`mtdsl.predict.coco_ids`; only when a detect task ran), ``<stem>.png`` (the original image with its
boxes, their labels and the first segment task's mask drawn on it, under a band naming the
image-label results) and ``<stem>.<task>.png`` (class-index masks at the original size).

>>> report = predict(spec, graph, "runs/pets/checkpoints/best.pt", [Path("cat.jpg")],
...                  Path("predictions/pets"))  # doctest: +SKIP
>>> report.images[0].outputs["pet"]["boxes"][0]  # doctest: +SKIP
{'box': [12.0, 30.5, 200.1, 180.0], 'class': 'pet', 'score': 0.91,
 'crops': {'breed': {'class': 'Bengal', 'score': 0.77}}}
"""

from mtdsl.predict.results import ImagePrediction, PredictionReport, summary_lines
from mtdsl.predict.run import predict

__all__ = ["ImagePrediction", "PredictionReport", "predict", "summary_lines"]
