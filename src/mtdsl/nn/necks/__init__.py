"""Necks: feature pyramids between a backbone and dense heads (detection, segmentation).

A neck reads every backbone map (``in_channels``/``in_strides`` from
:func:`mtdsl.graph.backbones.backbone_info`), picks those at strides
``2**min_level …`` (``simple_pyramid``: the last map alone), synthesises the levels above, and returns one map of
``out_channels`` per level in ``levels``. The connections are data
(:mod:`mtdsl.nn.necks.wiring`). The neck configs live in :mod:`mtdsl.spec.necks`;
``NECK_CONFIGS`` and ``NeckConfig`` are re-exported here for code written before
they moved.
"""

from mtdsl.nn.necks.bifpn import BiFPN, BiFPNLayer, Fusion, Resample
from mtdsl.nn.necks.fpn import FPN
from mtdsl.nn.necks.registry import NECK_BUILDERS, build_neck, neck_call
from mtdsl.nn.necks.simple_pyramid import SimplePyramid
from mtdsl.nn.necks.wiring import FusionNode, bifpn_wiring, fpn_wiring, output_offsets, pyramid_inputs
from mtdsl.spec.necks import NECK_CONFIGS, NeckConfig

__all__ = [
    "FPN",
    "NECK_BUILDERS",
    "NECK_CONFIGS",
    "BiFPN",
    "BiFPNLayer",
    "Fusion",
    "FusionNode",
    "NeckConfig",
    "Resample",
    "SimplePyramid",
    "bifpn_wiring",
    "build_neck",
    "fpn_wiring",
    "neck_call",
    "output_offsets",
    "pyramid_inputs",
]
