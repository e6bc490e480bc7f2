# docexchange: API + embedded mail worker, data on a volume, as a non-root user.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-croscore fonts-dejavu-core libsofthsm2 poppler-utils \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /srv/docexchange --create-home docex

WORKDIR /srv/docexchange/app
COPY pyproject.toml README.md constraints.txt ./
COPY service ./service
RUN pip install --no-cache-dir -c constraints.txt .

ENV DOCEX_DATA_DIR=/data \
    DOCEX_KEYS_DIR=/keys \
    PYTHONUNBUFFERED=1
RUN mkdir -p /data /keys && chown docex:docex /data /keys && chmod 700 /data /keys
VOLUME ["/data", "/keys"]
USER docex
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
CMD ["docexchange", "serve", "--host", "0.0.0.0", "--port", "8000"]
