"""Which weights online finetuning updates: all of them, or the layers above the VGG trunks.

A video's finetuning sees one annotated frame; updating the two VGG-16 trunks (two thirds of the CPU recipe's
weights, half of the default network's) from it can overfit that frame. `heads` keeps both trunks as trained and
updates the side outputs, their fusion, the stream fusion and the localization head; `block5` also updates the
trunks' last block (conv5_1..conv5_3).
"""
from __future__ import annotations

from typing import List

import tensorflow as tf

from maskrnn_tf.flag_validation import FINETUNE_LAYERS
from maskrnn_tf.model import MaskRNN

__all__ = ["FINETUNE_LAYERS", "finetuned_variables"]


def _trunks(model: MaskRNN) -> list:
    streams = [s for s in (model.appearance_stream, model.flow_stream) if s is not None]
    return [stream.get_layer(f"{stream.name}_vgg16") for stream in streams]


def finetuned_variables(model: MaskRNN, layers: str) -> List[tf.Variable]:
    """The trainable variables of `model` that finetuning with `layers` (one of FINETUNE_LAYERS) updates, in the
    order of `model.trainable_variables`."""
    if layers not in FINETUNE_LAYERS:
        raise ValueError(f"finetune layers must be one of {', '.join(FINETUNE_LAYERS)}, got {layers!r}.")
    variables = list(model.trainable_variables)
    if layers == "all":
        return variables
    frozen = set()
    for trunk in _trunks(model):
        for layer in trunk.layers:
            if layers == "heads" or not layer.name.startswith("block5_"):
                frozen.update(id(v) for v in layer.trainable_variables)
    kept = [v for v in variables if id(v) not in frozen]
    if not kept or len(kept) == len(variables):
        raise ValueError(f"finetune layers {layers!r}: found no VGG trunk to keep in this model.")
    return kept
