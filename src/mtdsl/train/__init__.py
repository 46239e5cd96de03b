"""Training: the parts the generated ``train.py`` is built from, in five rooms.

* :mod:`mtdsl.train.data`: what each task reads (sources, COCO files, masks, the synthetic
  shapes), transforms and the letterbox, splits and datasets, batching and the loaders;
* :mod:`mtdsl.train.metrics`: streaming evaluation metrics per task kind and the
  model-selection score;
* :mod:`mtdsl.train.loop`: what one step and one epoch need: task sampling, loss weighting,
  the learning-rate schedule, freezing phases, optimizer, precision, budget, evaluation,
  the progress bar and the small helpers the loop calls;
* :mod:`mtdsl.train.run`: what a run leaves behind and answers for: its folder and lock,
  its fingerprints and checkpoints, stop signals, the metrics log and results, the drawn
  predictions.
* :mod:`mtdsl.train.parallel`: several processes under torchrun: the world (rank,
  collectives, what the ranks decide together) and one DistributedDataParallel per stream.
"""
