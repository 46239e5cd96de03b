"""Training data: what each task reads, how an image becomes a tensor, and how batches are drawn.

From the bottom up: :mod:`~mtdsl.train.data.tasks` (what a task reads),
:mod:`~mtdsl.train.data.synthetic` (the generated shapes), :mod:`~mtdsl.train.data.sources`
(what every reader shares), :mod:`~mtdsl.train.data.box_mask_targets` (box and mask targets),
:mod:`~mtdsl.train.data.formats` (one reader per dataset format),
:mod:`~mtdsl.train.data.labels` (image labels into targets), :mod:`~mtdsl.train.data.examples`
(splits and joining datasets), :mod:`~mtdsl.train.data.transforms` and
:mod:`~mtdsl.train.data.letterbox` (image geometry), :mod:`~mtdsl.train.data.datasets`
(reading a dataset's splits, and the torch ``Dataset``),
:mod:`~mtdsl.train.data.batching` and :mod:`~mtdsl.train.data.loaders`.
"""
