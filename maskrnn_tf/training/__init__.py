"""Training of MaskRNN: losses, the static and recurrent steps, checkpoints, summaries and the loop."""
