"""EfficientDet's compound scaling (Tan et al. 2020, Table 1) is one knob,
:func:`efficientdet_scaling`:

===  ==========  ===============  ======  =======  ==========
 d   input size  backbone         BiFPN   BiFPN    box/class
                                  width   repeats  depth
===  ==========  ===============  ======  =======  ==========
 0   512         efficientnet_b0  64      3        3
 1   640         efficientnet_b1  88      4        3
 2   768         efficientnet_b2  112     5        3
 3   896         efficientnet_b3  160     6        4
 4   1024        efficientnet_b4  224     7        4
 5   1280        efficientnet_b5  288     7        4
 6   1280        efficientnet_b6  384     8        5
 7   1536        efficientnet_b6  384     8        5
===  ==========  ===============  ======  =======  ==========

The paper's rules are ``R = 512 + 128·d``, ``W = 64·1.35^d`` (rounded),
``D_bifpn = 3 + d`` and ``D_head = 3 + ⌊d/3⌋``; the table departs from them
where the paper does (D5–D7 sizes, D6–D7 BiFPN repeats, D7 keeps B6's backbone).
D6 and D7 use unweighted ``sum`` fusion, as effdet does for training stability.

It is a table of numbers, in the spec layer: ``input efficientdet(d)`` and the
``scale = d`` of necks and heads read it while a spec is validated.

>>> efficientdet_scaling(0)["image_size"], efficientdet_scaling(0)["channels"]
(512, 64)
"""

from __future__ import annotations

from typing import Any

#: (input size, backbone index, BiFPN width, BiFPN repeats, head depth) per EfficientDet-D{d}.
_EFFICIENTDET_TABLE = {
    0: (512, 0, 64, 3, 3),
    1: (640, 1, 88, 4, 3),
    2: (768, 2, 112, 5, 3),
    3: (896, 3, 160, 6, 4),
    4: (1024, 4, 224, 7, 4),
    5: (1280, 5, 288, 7, 4),
    6: (1280, 6, 384, 8, 5),
    7: (1536, 6, 384, 8, 5),
}


def efficientdet_scaling(d: int) -> dict[str, Any]:
    """The EfficientDet-D``d`` settings (table in the module docstring).

    Returns:
        ``image_size`` (square side), ``backbone`` (timm ``efficientnet_b*``), ``tf_backbone``
        (``tf_efficientnet_b*``, TensorFlow-ported weights and padding), ``channels`` and
        ``repeats`` (BiFPN), ``head_depth`` (box/class nets), ``min_level``/``max_level``
        (3–7) and ``weight_method`` (BiFPN fusion).

    >>> s = efficientdet_scaling(0)
    >>> s["image_size"], s["channels"], s["repeats"], s["head_depth"], s["backbone"]
    (512, 64, 3, 3, 'efficientnet_b0')
    """
    if d not in _EFFICIENTDET_TABLE:
        raise ValueError(f"EfficientDet scaling d={d!r} is not one of {sorted(_EFFICIENTDET_TABLE)} (D0–D7)")
    size, backbone, channels, repeats, head_depth = _EFFICIENTDET_TABLE[d]
    return {
        "image_size": size,
        "backbone": f"efficientnet_b{backbone}",
        "tf_backbone": f"tf_efficientnet_b{backbone}",
        "channels": channels,
        "repeats": repeats,
        "head_depth": head_depth,
        "min_level": 3,
        "max_level": 7,
        "weight_method": "sum" if d >= 6 else "fastattn",
    }
