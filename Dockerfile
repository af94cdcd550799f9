# iamwarden: slim Python, non-root, the runtime pins only (requirements.lock: no moto, pytest,
# ruff or cfn-lint; those are in requirements-dev.lock for `make test` / `make demo`).
#
# Stage 1 builds iamwarden's own wheel (needs setuptools); stage 2 installs the pinned runtime set
# plus that wheel, so the image carries no build tools and nothing the lock does not name.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY iamwarden ./iamwarden
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IAMWARDEN_DB=/data/iamwarden.db \
    IAMWARDEN_PORT=3000

WORKDIR /app
COPY requirements.lock ./
# --no-deps: the lock names every package (pip-compile's closure), so nothing unpinned sneaks in.
RUN pip install --no-deps -r requirements.lock
COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 iamwarden \
    && mkdir -p /data && chown iamwarden /data
COPY manifest.yml iam-policy.json ./
COPY policies ./policies
COPY deploy ./deploy

USER iamwarden
VOLUME ["/data"]
EXPOSE 3000

# /healthz is served in both modes (HTTP mode and, for this check, Socket Mode).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request,sys; r=urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"IAMWARDEN_PORT\",\"3000\")}/healthz', timeout=4); sys.exit(0 if r.status==200 else 1)"

ENTRYPOINT ["iamwarden"]
CMD ["run"]
