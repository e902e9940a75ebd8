"""What libraries print that a reader of a report should not see, silenced in
one place, each with its reason. Faults are fixed at their cause instead:
probabilities are renormalised before scikit-learn, Keras is told that the
tf.data pipeline shuffles itself, groups are scored over the classes they hold.
TensorFlow's C++ log level (INFO and WARNING off, errors shown) is set in
``maskdet/__init__.py``, before anything can import TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def quiet_libraries() -> None:
    """Python warnings and log lines that say nothing about our results."""
    import logging

    # MLflow's notices when it creates or migrates the sqlite store on a project's
    # first run ("Creating initial MLflow database tables...", alembic's steps).
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow's note that it validates the input example against the signature while logging.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.WARNING)


@contextlib.contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """Standard error closed at the file-descriptor level for the span. Native
    libraries write there directly, past Python's warnings and logging:
    TensorFlow's absl start-up notice (before its log level applies), LiteRT's
    "Created TensorFlow Lite XNNPACK delegate" on every interpreter, the TFLite
    converter's graph notes. Kept to those calls: a failure there still raises
    its Python exception, with its message."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
