#!/bin/sh
# The ingesters' EMQX accounts for docker-compose.scale.yml, as the bootstrap file of EMQX's built-in
# database (deploy/emqx/emqx.conf: user_id_type clientid, sha256 with the salt in front, bootstrap_type
# hash): one line per instance, user id reallabor-ingest-<K> (the client id of `reallabor ingest
# --instance K --of N`), all with the password MQTT_INGEST_PASSWORD, salted and hashed: the file holds
# no password. EMQX imports the ids it does not know yet at each start and never changes an existing one.
#
#   MQTT_INGEST_PASSWORD=... deploy/emqx/ingester-accounts.sh 3 > /etc/reallabor/emqx-accounts.csv
#
# then EMQX_ACCOUNTS_FILE=/etc/reallabor/emqx-accounts.csv in .env; the file must be readable by the
# containers' user emqx (uid 1000), e.g. chmod 0640 and group 1000.
set -eu
instances="${1:?usage: MQTT_INGEST_PASSWORD=... $0 INSTANCES > accounts.csv}"
client_id="${REALLABOR_MQTT__CLIENT_ID:-reallabor-ingest}"
case "$instances" in
  '' | *[!0-9]* | 0*) echo "$0: INSTANCES must be a whole number from 1, got '$instances'" >&2; exit 2 ;;
esac
if [ -z "${MQTT_INGEST_PASSWORD:-}" ]; then
  echo "$0: set MQTT_INGEST_PASSWORD (the ingesters' password, as in .env)" >&2
  exit 2
fi
echo "user_id,password_hash,salt,is_superuser"
k=0
while [ "$k" -lt "$instances" ]; do
  salt="$(openssl rand -hex 16)"
  hash="$(printf '%s%s' "$salt" "$MQTT_INGEST_PASSWORD" | openssl dgst -sha256 -r | cut -d ' ' -f 1)"
  echo "$client_id-$k,$hash,$salt,false"
  k=$((k + 1))
done
