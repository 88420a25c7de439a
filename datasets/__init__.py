"""tfds builders (installed as `maskrnn_tf.datasets`): davis, segtrack_v2, synthetic_vos."""
