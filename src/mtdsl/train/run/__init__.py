"""A run: its folder and lock, fingerprints and checkpoints, stop signals, its written results and pictures."""
