"""``detect``: boxes with classes. ``kind.py`` is torch-free; ``train.py`` is its training side."""
