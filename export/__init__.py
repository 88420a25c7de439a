"""SavedModel export for TF-Serving and the gRPC client (installed as `maskrnn_tf.export`)."""
