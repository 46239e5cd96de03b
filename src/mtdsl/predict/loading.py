"""A trained run's checkpoint as a model ready to predict with."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import torch

from mtdsl.errors import ArtefactError, TrainingError
from mtdsl.spec.document import Spec

__all__ = ["load_model"]


def load_model(spec: Spec, graph: nx.DiGraph, checkpoint: str | Path, device: torch.device) -> torch.nn.Module:
    """The spec's model with the checkpoint's weights, on ``device``, in eval mode.

    Raises:
        ArtefactError: no file at ``checkpoint``.
        TrainingError: the file is unreadable, or was trained for another model.
    """
    from mtdsl.nn.model import MultiTaskModel
    from mtdsl.train.run.checkpoint import inference_weights, load_checkpoint
    from mtdsl.train.run.fingerprints import model_hash

    path = Path(checkpoint)
    example = f"runs/{Path(spec.source.path).stem}/checkpoints/best.pt"
    if path.is_dir():
        inside = [p for p in (path / "checkpoints" / "best.pt", path / "best.pt", path / "checkpoints" / "last.pt")
                  if p.is_file()]
        raise ArtefactError(
            f"--checkpoint {path} is a folder, not a checkpoint file",
            hint=f"pass {inside[0]}" if inside else f"pass a .pt file written by mtdsl train, e.g. {example}",
        )
    if not path.is_file():
        raise ArtefactError(
            f"no checkpoint at {path}",
            hint=f"pass a .pt file written by mtdsl train (e.g. {example}); train one with: mtdsl train SPEC",
        )
    state = load_checkpoint(path, model_hash=model_hash(graph))
    model = MultiTaskModel(graph, load_pretrained=False)
    try:
        model.load_state_dict(inference_weights(state))
    except (KeyError, RuntimeError) as error:
        raise TrainingError(
            f"checkpoint {path} holds no weights that fit this model: {str(error).splitlines()[0]}",
            hint="use a checkpoint written by mtdsl train for this spec",
        ) from None
    return model.to(device).eval()
