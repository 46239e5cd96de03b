"""Early stopping: end the run once the model-selection metric has stopped improving.

``train { early_stop = 5 }`` stops after 5 epochs in a row without a better
mean validation main metric (the score that picks ``best.pt``, thesis §6.3).
The decision reads only the run's state (its epoch and its best epoch), which
every checkpoint saves, so a resumed run stops where the uninterrupted one
would, and a run resumed after it stopped early goes straight to its test. The
remaining epochs, later phases included, are not trained; the test reads the
best epoch's checkpoint as always.

>>> from mtdsl.train.loop.state import RunState
>>> stop_early(RunState(run="r", seed=0, epoch=7, best_epoch=2, best=0.5), patience=5)
'no better mean validation metric for 5 epochs (best 0.5000 at epoch 2; early_stop = 5): stopping early after epoch 7'
>>> stop_early(RunState(run="r", seed=0, epoch=6, best_epoch=2, best=0.5), patience=5) is None
True
"""

from __future__ import annotations

from mtdsl.train.loop.state import RunState


def stop_early(state: RunState, patience: int | None) -> str | None:
    """Why the run stops after epoch ``state.epoch``, or ``None`` while it goes on (always, without patience)."""
    if patience is None or state.best_epoch is None:
        return None
    waited = state.epoch - state.best_epoch
    if waited < patience:
        return None
    epochs = f"{waited} epoch{'s' if waited != 1 else ''}"
    return (f"no better mean validation metric for {epochs} (best {state.best:.4f} at epoch "
            f"{state.best_epoch}; early_stop = {patience}): stopping early after epoch {state.epoch}")
