"""``multilabel``: independent yes/no labels per image. ``kind.py`` is torch-free; ``train.py`` is its training side."""
