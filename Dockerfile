FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY simulators simulators
COPY device_profiles device_profiles
RUN pip install --no-cache-dir . && useradd --system reallabor && mkdir -p /var/lib/reallabor \
    && chown reallabor /var/lib/reallabor
USER reallabor
CMD ["reallabor", "ingest"]
