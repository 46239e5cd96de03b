"""``keypoints``: named points on the one object of an image. ``kind.py`` is torch-free; ``train.py`` is its
training side."""
