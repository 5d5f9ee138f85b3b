"""kubetrain trainer: runs Keras `fit` under a tf.distribute strategy from TF_CONFIG."""
