"""One reader per dataset format, found by the format's name in :data:`READERS`.

Each module reads one format into a :class:`~mtdsl.train.data.sources.Table`
and registers its reader under the name its config has in :mod:`mtdsl.spec.data`:

=========  ======================  ==========================================
format     module                  serves
=========  ======================  ==========================================
folder     :mod:`.folder`          classify, binary, multilabel
csv, json  :mod:`.manifest`        classify, binary, multilabel
coco       :mod:`.coco`            detect (boxes), segment (polygons, RLEs)
yolo       :mod:`.yolo`            detect
voc        :mod:`.voc`             detect
masks      :mod:`.masks`           segment
synthetic  :mod:`.synthetic`       every kind
=========  ======================  ==========================================
"""

from __future__ import annotations

from mtdsl.train.data.formats import coco, folder, manifest, masks, synthetic, voc, yolo
from mtdsl.train.data.formats.registry import READERS, Reader, read_table

__all__ = ["READERS", "Reader", "coco", "folder", "manifest", "masks", "read_table", "synthetic", "voc", "yolo"]
