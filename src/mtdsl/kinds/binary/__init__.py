"""``binary``: one yes/no label per image. ``kind.py`` is torch-free; ``train.py`` is its training side."""
