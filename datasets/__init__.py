"""tfds builders (installed as `maskrnn_tf.datasets`): maskrnn_davis, segtrack_v2, synthetic_vos."""
