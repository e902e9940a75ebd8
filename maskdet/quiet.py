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
import re
import sys
import threading
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
def logger_level(name: str, level: int) -> Iterator[None]:
    """Python logger ``name`` held at ``level`` for the block, then put back:
    for a library that logs a notice on one call we make on purpose (each use
    says which notice and why)."""
    import logging

    log = logging.getLogger(name)
    saved = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(saved)


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


# Native log lines that are not about our results, dropped by native_stderr_filtered.
NATIVE_NOISE = re.compile(
    rb"All log messages before absl::InitializeLog"  # TensorFlow's start-up preamble to the next line
    rb"|oneDNN custom operations are on"  # the kernels are the same on every run of this machine
    rb"|Created TensorFlow Lite XNNPACK delegate"  # LiteRT, once per interpreter
    # tf.data's MapDataset carries an attribute this TensorFlow build's op registry
    # does not list; logged at error level, once per process, with no effect.
    rb"|NodeDef mentions attribute use_unbounded_threadpool"
)


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Standard error, at the file-descriptor level, passed through a filter
    for the span: lines matching NATIVE_NOISE are dropped, every other line
    (a real error included) goes on. For a whole stage, where a blanket
    ``native_stderr_quiet`` would hide too much."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not NATIVE_NOISE.search(line):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="native-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        os.dup2(saved, 2)  # the pipe's last write end closes: the pump reads to the end and stops
        thread.join(timeout=10)
        os.close(saved)


def filtering_native_stderr(func):
    """``func`` run under ``native_stderr_filtered`` (the stages' entry points)."""
    import functools

    @functools.wraps(func)
    def run(*args, **kwargs):
        with native_stderr_filtered():
            return func(*args, **kwargs)

    return run
