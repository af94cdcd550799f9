# iamwarden: slim Python, non-root, installed from the same pins as `make`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IAMWARDEN_DB=/data/iamwarden.db \
    IAMWARDEN_PORT=3000

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install -r requirements.lock
COPY bot ./bot
COPY handlers ./handlers
COPY manifest.yml iam-policy.json ./
RUN pip install --no-deps --no-build-isolation . \
    && useradd --create-home --uid 10001 iamwarden \
    && mkdir -p /data && chown iamwarden /data

USER iamwarden
VOLUME ["/data"]
EXPOSE 3000

# /healthz is served in both modes (HTTP mode and, for this check, Socket Mode).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request,sys; r=urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"IAMWARDEN_PORT\",\"3000\")}/healthz', timeout=4); sys.exit(0 if r.status==200 else 1)"

ENTRYPOINT ["iamwarden"]
CMD ["run"]
