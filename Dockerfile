# One image for every Hive process: docker-compose.yml picks the command (worker, beat, flower,
# db upgrade) after the `hive` entry point.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# psycopg2-binary ships libpq in its wheel: no compiler or system packages needed.
COPY pyproject.toml README.md /src/
COPY hive /src/hive
# The flower extra: the same image runs `hive flower`.
RUN pip install "/src[flower,api]" && rm -rf /src

# HIVE_PIPELINES_DIR defaults to config/pipelines, relative to the working directory.
COPY config ./config

# A numeric UID so runAsNonRoot-style checks can verify it without an /etc/passwd lookup.
# It owns /app (not the code in it): celery beat writes its schedule file to the working dir.
RUN groupadd --system --gid 10001 hive \
    && useradd --system --uid 10001 --gid hive --home-dir /app --shell /usr/sbin/nologin hive \
    && chown hive:hive /app
USER 10001:10001

ENTRYPOINT ["hive"]
CMD ["--help"]
