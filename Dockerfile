# Relay in one image: the trio relay process and its aiohttp web process, run as a non-root user.
#   docker build -t relay .
#   docker run -p 8080:8080 -v $PWD/relay.toml:/etc/relay/relay.toml:ro relay
# The same image serves the built-in test camera: `relay camera --listen 0.0.0.0:8554`.
# Debian 12 (bookworm) throughout: its python3 is 3.11, and node/npm only exist in the web stage.

# --- hls.js for the page, installed from the lock file (no CDN at run time) ---
FROM debian:bookworm-slim AS web
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- the Python package in a virtualenv ---
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/relay
COPY pyproject.toml README.md /build/
COPY relay /build/relay
COPY web /build/web
RUN /opt/relay/bin/pip install --no-cache-dir --disable-pip-version-check /build
# web/app.py looks for hls.js beside itself, in web/node_modules
COPY --from=web /build/web/node_modules/hls.js/dist \
     /opt/relay/lib/python3.11/site-packages/web/node_modules/hls.js/dist

# --- runtime ---
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/relay --create-home \
            --shell /usr/sbin/nologin relay \
 && mkdir -p /etc/relay /var/lib/relay/hls \
 && chown relay:relay /var/lib/relay/hls
COPY --from=build /opt/relay /opt/relay
ENV PATH=/opt/relay/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER relay
WORKDIR /var/lib/relay
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["relay"]
CMD ["run", "--config", "/etc/relay/relay.toml"]
