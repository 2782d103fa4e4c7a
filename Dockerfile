# Herald as a container: `docker build -t herald . && docker run -p 3978:3978 -v herald-data:/app/data --env-file .env herald`
# The image listens on 0.0.0.0 and sets no MicrosoftAppId: give it the bot's app registration
# (MicrosoftAppId, MicrosoftAppPassword, ...). Without one Herald would run in Emulator mode,
# which authenticates nobody, and refuses to start on a non-loopback address (exit code 2)
# unless HERALD_EMULATOR_ALLOW_REMOTE=true is passed explicitly (README: Security).
# The API reference viewer (swagger-ui-dist, pinned in web/vendor) is installed in a stage of
# its own: the image serves its two files and needs no Node.js at run time.
FROM node:22-slim AS web-vendor
WORKDIR /vendor
COPY web/vendor/package.json web/vendor/package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (pinned), so code changes reuse this layer.
COPY requirements.txt .
RUN pip install -r requirements.txt

# An unprivileged user owns only the data dir (embedded store, generated secrets).
RUN useradd --system --uid 10001 --home-dir /app --no-create-home herald \
    && mkdir -p /app/data \
    && chown herald:herald /app/data \
    && chmod 700 /app/data

COPY . .
COPY --from=web-vendor /vendor/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
    /vendor/node_modules/swagger-ui-dist/swagger-ui.css \
    /app/web/vendor/node_modules/swagger-ui-dist/

USER herald

# Listen on every interface inside the container; the port is config.py's default. No app id
# and no HERALD_EMULATOR_ALLOW_REMOTE here: both are the operator's to give at `docker run`.
ENV HOST=0.0.0.0 \
    PORT=3978 \
    HERALD_DATA_DIR=/app/data
EXPOSE 3978
VOLUME ["/app/data"]

# No curl in slim images: Python's urllib asks /healthz (a non-2xx answer raises, exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3978'), timeout=4)"

CMD ["python", "app.py"]
