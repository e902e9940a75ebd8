"""The study: tf.data pipelines, the model, training, exports, metrics, plots,
scene and real-photo evaluations, and MLflow tracking."""
