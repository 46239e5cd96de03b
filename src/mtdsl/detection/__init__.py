"""EfficientDet-style detection core: anchors and their labeller, the box coder, post-processing and the losses."""
