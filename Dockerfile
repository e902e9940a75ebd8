# maskdet in a container. Two targets; packages come from hash-pinned locks,
# nothing else is downloaded at build time.
#
# `serve` (slim): the Predictor as a REST API (`maskdet serve`) or the Voila
# dashboard, without TensorFlow, DVC or JupyterLab (requirements-serve.lock).
# Mount the project at its own path so that models:/maskdet@champion and the
# artifact paths in mlflow.db resolve as they do outside:
#   docker build --target serve -t maskdet-serve .
#   docker run --rm -p 5001:5001 -v "$PWD:$PWD" -w "$PWD" maskdet-serve
#   docker run --rm -p 8866:8866 -v "$PWD:$PWD" -w "$PWD" maskdet-serve \
#       voila notebooks/dashboard.ipynb --no-browser --Voila.ip=0.0.0.0 --port=8866
FROM python:3.11-slim-bookworm AS serve

# Nothing writes bytecode at run time: the packages' .pyc are compiled once at
# build (uv --compile-bytecode), or every start would compile them from source.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY requirements-bootstrap.lock requirements-serve.lock ./
RUN useradd --create-home --uid 1000 maskdet \
    && python -m venv /opt/venv \
    && pip install --require-hashes -r requirements-bootstrap.lock \
    && uv pip install --python /opt/venv/bin/python --compile-bytecode --require-hashes -r requirements-serve.lock \
    && pip uninstall -y uv
# The package on PYTHONPATH (no build step, so no unpinned build tools).
COPY maskdet maskdet
COPY voila.json ./
COPY notebooks/dashboard.ipynb notebooks/

USER 1000:1000
EXPOSE 5001 8866
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5001/ping', timeout=4)"]
CMD ["python", "-m", "maskdet", "serve", "--host", "0.0.0.0", "--port", "5001"]

# The whole project (the default target): the Voila dashboard by default, or
# any project command (`dvc repro`, `maskdet predict ...`).
#   docker build -t maskdet .
#   docker run --rm -p 8866:8866 -v "$PWD/models:/app/models" maskdet
#   docker run --rm -v maskdet-work:/app maskdet dvc repro
FROM python:3.11-slim-bookworm AS study

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MASKDET_CACHE=/home/maskdet/.cache/maskdet \
    PATH=/opt/venv/bin:$PATH

# git: DVC tracks the pipeline in the repository; make: the project's targets;
# chromium: the report stage prints reports/pdf/report.pdf with it (Debian
# follows Chromium's security releases, so only the distribution's build is pinned).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* make=4.3-* chromium=*deb12* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 maskdet

WORKDIR /app
COPY requirements-bootstrap.lock requirements.lock ./
RUN python -m venv /opt/venv \
    && pip install --require-hashes -r requirements-bootstrap.lock \
    && uv pip install --python /opt/venv/bin/python --compile-bytecode --require-hashes -r requirements.lock

COPY --chown=maskdet:maskdet . .
RUN uv pip install --python /opt/venv/bin/python --no-deps -e . \
    && chown -R maskdet:maskdet /app

USER 1000:1000
EXPOSE 8866
# A static file: a request for the page itself would start a kernel each time.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8866/voila/static/voila.js', timeout=4)"]
# beyond loopback the dashboard starts only with a token: docker run -e MASKDET_DASHBOARD_TOKEN=...
CMD ["python", "-m", "maskdet", "dashboard", "--host", "0.0.0.0", "--port", "8866"]
