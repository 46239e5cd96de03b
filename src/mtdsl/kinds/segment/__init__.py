"""``segment``: a class per pixel. ``kind.py`` is torch-free; ``train.py`` is its training side."""
