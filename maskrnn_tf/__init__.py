"""maskrnn-tf: MaskRNN (Hu, Huang, Schwing, NIPS 2017) in TensorFlow/Keras 3.

Importing the package imports nothing heavy; use the subpackages (`maskrnn_tf.ops`, `maskrnn_tf.model`, ...).
"""

__version__ = "0.1.0"
