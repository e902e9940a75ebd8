"""One module per pipeline stage that runs a notebook or the report: what the
notebook calls, which computes, writes the stage's outputs and logs to MLflow.
The notebooks show what these return; papermill runs them inside DVC stages.
A stage imports only what it runs, so its import closure is its DVC deps.
"""
