"""Data: sequence readers, synthetic videos, flow backends and cache, augmentation, tf.data pipelines.

Import submodules directly (e.g. `from maskrnn_tf.data.pipelines import make_clip_dataset`); this package
module stays light so that `maskrnn_tf.data.sequences` can be used without importing TensorFlow.
"""
