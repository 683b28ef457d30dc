#!/bin/bash
# InfluxDB 2 first start (docker-compose.yml mounts this into /docker-entrypoint-initdb.d; the image runs
# it once, after DOCKER_INFLUXDB_INIT_MODE=setup, with the admin token configured for the influx CLI).
# 1. The DBRP mapping bucket -> database "reallabor", retention policy "autogen" (default), so that
#    InfluxQL (Grafana, the pages, the open data) reads the bucket as InfluxDB 1.x and 3.x are read.
# 2. The read-only v1 user "grafana" on that bucket, whose password comes from the environment
#    (INFLUX_GRAFANA_PASSWORD), for Grafana's InfluxQL datasource (deploy/grafana/provisioning).
set -euo pipefail
org="${DOCKER_INFLUXDB_INIT_ORG:?}"
bucket="${DOCKER_INFLUXDB_INIT_BUCKET:?}"
bucket_id="$(influx bucket list --org "$org" --name "$bucket" --hide-headers | cut -f1)"
if [ -z "$bucket_id" ]; then
  echo "reallabor: bucket $bucket not found in org $org" >&2
  exit 1
fi
if ! influx v1 dbrp list --org "$org" --db reallabor --hide-headers | grep -q .; then
  influx v1 dbrp create --org "$org" --bucket-id "$bucket_id" --db reallabor --rp autogen --default
fi
if ! influx v1 auth list --org "$org" --user grafana --hide-headers | grep -q .; then
  influx v1 auth create --org "$org" --username grafana --read-bucket "$bucket_id" \
    --password "${INFLUX_GRAFANA_PASSWORD:?set INFLUX_GRAFANA_PASSWORD}" --description "grafana (read-only)"
fi
