"""Training data: what each task reads, how an image becomes a tensor, and how batches are drawn.

From the bottom up: :mod:`~mtdsl.train.data.tasks` (what a task reads),
:mod:`~mtdsl.train.data.synthetic`, :mod:`~mtdsl.train.data.sources` and
:mod:`~mtdsl.train.data.coco_file` (reading labels), :mod:`~mtdsl.train.data.dense` (boxes and
masks), :mod:`~mtdsl.train.data.transforms` and :mod:`~mtdsl.train.data.letterbox` (image geometry),
:mod:`~mtdsl.train.data.datasets` (splits and the torch ``Dataset``),
:mod:`~mtdsl.train.data.batching` and :mod:`~mtdsl.train.data.loaders`.
"""
