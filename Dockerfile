# The web app's browser libraries (uPlot for /ops), exactly as package-lock.json pins them
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY simulators simulators
COPY device_profiles device_profiles
COPY --from=web /web/node_modules /app/node_modules
ENV REALLABOR_NODE_MODULES=/app/node_modules
RUN pip install --no-cache-dir . && useradd --system reallabor && mkdir -p /var/lib/reallabor \
    && chown reallabor /var/lib/reallabor
USER reallabor
CMD ["reallabor", "ingest"]
