"""The runtime: the Predictor and what it is made of (detectors, classifier
runtimes, crops, drawing), video, and the MLflow-served model. Imports only
``maskdet.io`` and the configuration (see docs/architecture.md), so the CLI,
the dashboard and the served model never load the data stage or the study."""
