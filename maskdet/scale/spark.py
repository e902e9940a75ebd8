"""Batch scoring on Apache Spark: ``maskdet spark-predict INPUT OUTPUT``.

The registered Predictor (``models:/maskdet@champion``) runs inside Spark
through MLflow's own bridge, ``mlflow.pyfunc.spark_udf``: the same served model
as ``maskdet serve``, so Spark, the REST API and the CLI give the same faces and
labels. Images come from Spark's ``binaryFile`` source (a folder, searched
recursively, or a glob; local, HDFS or an object store alike). The answer is
Parquet with one row per face in the columns of the CLI's CSV
(``maskdet.predict.predictor.CSV_HEADER``), and one row with empty face columns
for an image without faces or one that failed, its ``error`` filled: a bad
image never fails the job.

How it scales. MLflow copies the model to each executor once, and each Python
worker loads the Predictor once and keeps it while Spark reuses the worker
(``spark.python.worker.reuse``, on by default). Partitions come from Spark's
file source: about ``spark.sql.files.maxPartitionBytes`` of files each, each
file counted at least ``spark.sql.files.openCostInBytes`` (4 MB), so about 30
photos a partition on a large set and one a core on a small one. Within a
partition the Predictor is handed ``batch_size`` images at a time (Arrow
batches), which bounds a worker's memory whatever the partition size.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from maskdet import LABELS
from maskdet.errors import InputError, MaskdetError
from maskdet.io.images import IMAGE_EXTENSIONS, MAX_FILE_BYTES
from maskdet.predict.predictor import CSV_HEADER
from maskdet.quiet import logger_level

# What the served model answers per image (docs/architecture.md, section 2), as Spark types.
FACES_TYPE = (
    "array<struct<box:array<int>,score:double,label:string,probs:struct<"
    + ",".join(f"{k}:double" for k in LABELS)
    + ">>>"
)
# width and height as double: MLflow turns a column of ints with one null (an image
# that failed) into NaN, which no int type holds; face_rows casts them back.
PREDICTION_TYPE = f"struct<image:string,width:double,height:double,ms:double,error:string,faces:{FACES_TYPE}>"


def java_found() -> bool:
    """Spark's JVM: java on PATH or JAVA_HOME set."""
    return bool(shutil.which("java") or os.environ.get("JAVA_HOME"))


@dataclass
class Summary:
    images: int
    faces: int
    failed: int


def session(master: str | None, batch_size: int):
    """A SparkSession: ``master`` when given; under ``spark-submit`` the one it
    sets; otherwise ``local[*]`` (every core of this machine)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("maskdet spark-predict")
    if not master and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not started by spark-submit
        master = "local[*]"
    if master:
        builder = builder.master(master)
    if master and master.startswith("local"):
        # this machine's workers: this Python, with the project's packages (a cluster sets PYSPARK_PYTHON)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # nothing to reach beyond this machine
    return (
        builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
        # the Predictor's threads: one per task, as many tasks as cores
        .config("spark.executorEnv.OMP_NUM_THREADS", "1")
        .config("spark.ui.showConsoleProgress", "false")
        # one line of base64, as the served model takes it (Spark 4 breaks it every 76 characters)
        .config("spark.sql.chunkBase64String.enabled", "false")
        .getOrCreate()
    )


def _image_files(spark, source: str):
    """Spark's binaryFile rows (path, length, content) of every image file under ``source``."""
    from pyspark.sql import functions as F

    reader = spark.read.format("binaryFile")
    if not any(ch in source for ch in "*?[{"):
        reader = reader.option("recursiveFileLookup", "true")
    pattern = r"(?i)\.(" + "|".join(e.lstrip(".") for e in IMAGE_EXTENSIONS) + ")$"
    return reader.load(source).where(F.col("path").rlike(pattern))


def predictions(spark, source: str, model_uri: str):
    """One row per image: ``path`` and ``prediction`` (``PREDICTION_TYPE``)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    from maskdet.paths import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())  # models:/ URIs: the project's store or MLFLOW_TRACKING_URI
    # env_manager="local": the executors' Python already has the serving packages
    # (requirements-serve.lock); MLflow would otherwise build an environment per executor.
    # (MLflow warns about that choice each time; the lock is the environment, so its warning is kept out.)
    with logger_level("mlflow.pyfunc", logging.ERROR):
        udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=PREDICTION_TYPE, env_manager="local")
    files = _image_files(spark, source)
    # The file source filters on length before it reads a file, so an oversized one
    # is never loaded (Spark fails a job on a file over 2 GB); it gets its error.
    small = files.where(F.col("length") <= MAX_FILE_BYTES)
    answered = small.select(
        "path", udf(F.struct(F.base64("content").alias("image"), F.col("path").alias("name"))).alias("prediction")
    )
    refused = files.where(F.col("length") > MAX_FILE_BYTES).select(
        "path",
        F.struct(
            F.col("path").alias("image"),
            *(F.lit(None).cast("double").alias(n) for n in ("width", "height", "ms")),
            F.lit(f"too_large: over {MAX_FILE_BYTES // 2**20} MB, not read").alias("error"),
            F.lit(None).cast(FACES_TYPE).alias("faces"),
        ).alias("prediction"),
    )
    return answered.unionByName(refused)


def face_rows(predicted):
    """The CLI's CSV columns, one row per face (``face`` numbered from 0), or one
    row with empty face columns for an image with none or with an error."""
    from pyspark.sql import functions as F

    p = F.col("prediction")
    exploded = predicted.select("path", p, F.posexplode_outer(p["faces"]).alias("face", "f"))
    box = F.col("f")["box"]

    def whole(x):  # NaN or null (an image that failed) -> null
        return F.when(F.isnan(x), None).otherwise(x).cast("int")

    # MLflow turns a missing error into the text "nan" (or "None") when another image
    # of the same batch has one: both read as no error.
    error = F.when(p["error"].isin("nan", "None"), None).otherwise(p["error"])
    columns = {
        "image": F.col("path"),
        "width": whole(p["width"]),
        "height": whole(p["height"]),
        "ms": p["ms"],
        "error": error,
        "face": F.col("face"),
        "x1": box[0],
        "y1": box[1],
        "x2": box[2],
        "y2": box[3],
        "score": F.col("f")["score"],
        "label": F.col("f")["label"],
        **{f"p_{k}": F.col("f")["probs"][k] for k in LABELS},
    }
    assert list(columns) == CSV_HEADER  # the contract: the CLI's CSV
    return exploded.select(*(c.alias(n) for n, c in columns.items()))


def spark_predict(source: str, output: str, model_uri: str, master: str | None = None, batch_size: int = 32) -> Summary:
    """Score every image under ``source`` into Parquet at ``output`` (replaced
    when it exists: Spark writes to a temporary folder and commits at the end,
    so a failed job leaves no half-written result)."""
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: expected at least 1")
    local = "://" not in source and not source.startswith("file:")
    if local and not any(ch in source for ch in "*?[{") and not Path(source).exists():
        raise InputError(f"{source}: no such file or folder; give a folder of images or a glob")
    if not java_found():
        raise MaskdetError("Spark needs Java 17 or 21, and none was found: `make system` installs it")
    # MLflow's download bars, and PySpark's notice about pandas 3 in every worker
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("PYTHONWARNINGS", "ignore:PySpark does not yet fully support pandas:FutureWarning")
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    spark = session(master, batch_size)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        try:
            rows = face_rows(predictions(spark, source, model_uri))
            rows.write.mode("overwrite").parquet(output)
        except AnalysisException as exc:  # a path that is not there, or no file in it
            raise InputError(f"{source}: {str(exc).splitlines()[0]}") from None
        written = spark.read.parquet(output)
        counts = written.agg(
            F.countDistinct("image").alias("images"),
            F.count("face").alias("faces"),
            F.countDistinct(F.when(F.col("error").isNotNull(), F.col("image"))).alias("failed"),
        ).first()
        return Summary(counts["images"], counts["faces"], counts["failed"])
    finally:
        spark.stop()
