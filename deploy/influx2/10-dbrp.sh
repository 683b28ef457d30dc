#!/bin/bash
# InfluxDB 2 first start (docker-compose.yml mounts this into /docker-entrypoint-initdb.d; the image runs
# it once, after DOCKER_INFLUXDB_INIT_MODE=setup, with the admin token configured for the influx CLI).
# InfluxQL (Grafana, the API's pages, the energy ledger, the open data) reads InfluxDB 2 as it reads 1.x:
# 1. DBRP mappings: bucket readings -> database "reallabor", retention policy "autogen" (the default);
#    bucket <bucket>_rollups (kept for good; `reallabor influx tasks` writes there) -> "reallabor"."rollups",
#    where the energy ledger and the rollups live.
# 2. v1 users, passwords from the environment: "grafana" and "reader" (the API) read both buckets;
#    the ledger's user reads readings and rollups and writes rollups (docs/lifecycle.md).
set -euo pipefail
org="${DOCKER_INFLUXDB_INIT_ORG:?}"
bucket="${DOCKER_INFLUXDB_INIT_BUCKET:?}"

bucket_id() {
  influx bucket list --org "$org" --name "$1" --hide-headers | cut -f1
}

raw_id="$(bucket_id "$bucket")"
if [ -z "$raw_id" ]; then
  echo "reallabor: bucket $bucket not found in org $org" >&2
  exit 1
fi
rollups="${bucket}_rollups"
rollups_id="$(bucket_id "$rollups" || true)"
if [ -z "$rollups_id" ]; then
  influx bucket create --org "$org" --name "$rollups" --retention 0 >/dev/null
  rollups_id="$(bucket_id "$rollups")"
fi

mapping() {  # database rp bucket-id [--default]
  if ! influx v1 dbrp list --org "$org" --db "$1" --rp "$2" --hide-headers | grep -q .; then
    influx v1 dbrp create --org "$org" --db "$1" --rp "$2" --bucket-id "$3" "${@:4}"
  fi
}
mapping reallabor autogen "$raw_id" --default
mapping reallabor rollups "$rollups_id"

user() {  # name password description permissions...
  if ! influx v1 auth list --org "$org" --user "$1" --hide-headers | grep -q .; then
    influx v1 auth create --org "$org" --username "$1" --password "$2" --description "$3" "${@:4}"
  fi
}
user grafana "${INFLUX_GRAFANA_PASSWORD:?set INFLUX_GRAFANA_PASSWORD}" "grafana (read-only)" \
  --read-bucket "$raw_id" --read-bucket "$rollups_id"
user reader "${INFLUX_READER_PASSWORD:?set INFLUX_READER_PASSWORD}" "the API's pages (read-only)" \
  --read-bucket "$raw_id" --read-bucket "$rollups_id"
user "${INFLUX_LEDGER_USER:?set INFLUX_LEDGER_USER}" "${INFLUX_LEDGER_PASSWORD:?set INFLUX_LEDGER_PASSWORD}" \
  "the energy ledger (reads readings, writes rollups)" \
  --read-bucket "$raw_id" --read-bucket "$rollups_id" --write-bucket "$rollups_id"
