# maskdet in a container: the Voila dashboard by default, or any project
# command (`dvc repro`, `maskdet predict ...`). Packages come from the same
# hash-pinned lock as `make`; nothing else is downloaded at build time.
#   docker build -t maskdet .
#   docker run --rm -p 8866:8866 -v "$PWD/models:/app/models" maskdet
#   docker run --rm -v maskdet-work:/app maskdet dvc repro
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MASKDET_CACHE=/home/maskdet/.cache/maskdet \
    PATH=/opt/venv/bin:$PATH

# git: DVC tracks the pipeline in the repository; make: the project's targets.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* make=4.3-* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 maskdet

WORKDIR /app
COPY requirements-bootstrap.lock requirements.lock ./
RUN python -m venv /opt/venv \
    && pip install --require-hashes -r requirements-bootstrap.lock \
    && uv pip install --python /opt/venv/bin/python --require-hashes -r requirements.lock

COPY --chown=maskdet:maskdet . .
RUN uv pip install --python /opt/venv/bin/python --no-deps -e . \
    && chown -R maskdet:maskdet /app

USER 1000:1000
EXPOSE 8866
# A static file: a request for the page itself would start a kernel each time.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8866/voila/static/voila.js', timeout=4)"]
CMD ["voila", "notebooks/dashboard.ipynb", "--no-browser", "--Voila.ip=0.0.0.0", "--port=8866"]
