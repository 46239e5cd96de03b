"""``classify``: single-label classification. ``kind.py`` is torch-free; ``train.py`` is its training side."""
