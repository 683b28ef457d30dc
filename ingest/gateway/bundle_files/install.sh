#!/usr/bin/env bash
# Installs gateway @GATEWAY@ on Raspberry Pi OS (Debian 12 bookworm) from this bundle's folder.
#
#   sudo ./install.sh                      # the wheel reallabor_ingest-@VERSION@-*.whl lies next to this script
#   sudo ./install.sh --index-url URL      # or: reallabor-ingest==@VERSION@ from this package index
#
# Safe to run again: with a new bundle (new password) or a new wheel; the meters of the installed
# gateway.yaml are carried over when the new one has none, the previous file is kept as
# gateway.yaml.<time>.bak. See README.txt.
set -euo pipefail

VERSION="@VERSION@"
PACKAGE="reallabor-ingest"
SERVICE_USER="reallabor-gw"
FORWARDER_USER="@FORWARDER_USER@"
PREFIX="/opt/reallabor-gateway"
CONFIG_DIR="/etc/reallabor-gateway"
MOSQUITTO_DIR="/etc/mosquitto/reallabor"
UNIT_DIR="/etc/systemd/system"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
INDEX_URL="${REALLABOR_INDEX_URL:-}"

usage() {
    echo "usage: sudo ./install.sh [--index-url URL]"
    echo "  without --index-url: installs the wheel reallabor_ingest-${VERSION}-*.whl next to install.sh"
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --index-url)
            [ "$#" -ge 2 ] || { echo "install.sh: --index-url needs a URL" >&2; exit 2; }
            INDEX_URL="$2"
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "install.sh: unknown argument: $1" >&2
            usage >&2
            exit 2
            ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run it as root: sudo ./install.sh" >&2
    exit 1
fi

shopt -s nullglob
wheels=("$HERE"/reallabor_ingest-"$VERSION"-*.whl)
shopt -u nullglob
if [ "${#wheels[@]}" -gt 1 ]; then
    echo "install.sh: more than one wheel of version $VERSION next to install.sh; keep one" >&2
    exit 2
fi
if [ "${#wheels[@]}" -eq 0 ] && [ -z "$INDEX_URL" ]; then
    echo "install.sh: put reallabor_ingest-${VERSION}-*.whl next to install.sh, or give --index-url URL" >&2
    exit 2
fi

echo "== Debian packages: mosquitto, python3-venv"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends mosquitto python3-venv

echo "== service user $SERVICE_USER (serial ports: group dialout)"
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/reallabor-gateway --no-create-home \
        --shell /usr/sbin/nologin "$SERVICE_USER"
fi
usermod --append --groups dialout "$SERVICE_USER"

echo "== software into $PREFIX"
install -d -m 0755 "$PREFIX"
if [ ! -x "$PREFIX/venv/bin/python" ]; then
    python3 -m venv "$PREFIX/venv"
fi
# the gateway's own few requirements, not the central side's (pandas, typst ...): --no-deps
if [ "${#wheels[@]}" -eq 1 ]; then
    "$PREFIX/venv/bin/pip" install --quiet --upgrade --no-deps "${wheels[0]}"
    "$PREFIX/venv/bin/pip" install --quiet --upgrade -r "$HERE/requirements-gateway.txt"
else
    "$PREFIX/venv/bin/pip" install --quiet --upgrade --no-deps --index-url "$INDEX_URL" "$PACKAGE==$VERSION"
    "$PREFIX/venv/bin/pip" install --quiet --upgrade --index-url "$INDEX_URL" -r "$HERE/requirements-gateway.txt"
fi
install -m 0644 "$HERE/README.txt" "$PREFIX/README.txt"
# the gateway's command (`reallabor gateway` is the central side's and needs its packages)
ln -sfn "$PREFIX/venv/bin/reallabor-gateway" /usr/local/bin/reallabor-gateway

echo "== configuration in $CONFIG_DIR (readable by $SERVICE_USER only)"
install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR"
new_config="$HERE/gateway.yaml"
carried=""
if [ -f "$CONFIG_DIR/gateway.yaml" ]; then
    # a new bundle comes with "meters: []": the meters entered on this Pi are carried over (exit 0);
    # exit 3: nothing to carry (the new file has meters, or the installed one has none)
    carried="$(mktemp)"
    trap 'rm -f "$carried"' EXIT  # it holds the password while it exists
    carry=0
    "$PREFIX/venv/bin/python" - "$HERE/gateway.yaml" "$CONFIG_DIR/gateway.yaml" "$carried" <<'PY' || carry=$?
import sys

import yaml

new_path, old_path, out_path = sys.argv[1:4]
with open(new_path, encoding="utf-8") as file:
    new_text = file.read()
try:
    with open(old_path, encoding="utf-8") as file:
        old = yaml.safe_load(file)
except yaml.YAMLError as exc:
    print(f"install.sh: the installed {old_path} is no valid YAML ({exc}); its meters are not carried over")
    sys.exit(3)
new = yaml.safe_load(new_text)
meters = old.get("meters") if isinstance(old, dict) else None
if not isinstance(new, dict) or new.get("meters") or not meters:
    sys.exit(3)
block = "# carried over from the previous gateway.yaml by install.sh\n"
block += yaml.safe_dump({"meters": meters}, sort_keys=False, allow_unicode=True)
lines = new_text.splitlines(keepends=True)
empty = [i for i, line in enumerate(lines) if line.rstrip() in ("meters: []", "meters:")]
if empty:
    lines[empty[0]] = block
else:
    lines.append(("" if new_text.endswith("\n") else "\n") + block)
with open(out_path, "w", encoding="utf-8") as file:
    file.write("".join(lines))
print(f"   carried the {len(meters)} meter(s) of the installed gateway.yaml over into the new one")
PY
    if [ "$carry" -eq 0 ]; then
        new_config="$carried"
    elif [ "$carry" -ne 3 ]; then
        echo "install.sh: could not read the meters of the installed gateway.yaml (exit $carry)" >&2
        rm -f "$carried"
        exit 1
    fi
    if ! cmp -s "$new_config" "$CONFIG_DIR/gateway.yaml"; then
        backup="$CONFIG_DIR/gateway.yaml.$(date +%Y%m%d-%H%M%S).bak"
        cp -p "$CONFIG_DIR/gateway.yaml" "$backup"
        echo "   the previous gateway.yaml is kept as $backup"
    fi
fi
install -m 0600 -o "$SERVICE_USER" -g "$SERVICE_USER" "$new_config" "$CONFIG_DIR/gateway.yaml"
if [ -n "$carried" ]; then
    rm -f "$carried"
fi
if [ -f "$HERE/ca.crt" ]; then
    install -m 0644 -o root -g root "$HERE/ca.crt" "$CONFIG_DIR/ca.crt"
fi
# a mistake in the meters edited by hand stops here, naming the key (README.txt, step 2)
(cd / && runuser -u "$SERVICE_USER" -- "$PREFIX/venv/bin/reallabor-gateway" check \
    --config "$CONFIG_DIR/gateway.yaml")

echo "== local Mosquitto (Wi-Fi and Zigbee devices) in $MOSQUITTO_DIR"
install -d -m 0750 -o root -g mosquitto "$MOSQUITTO_DIR"
install -m 0644 -o root -g root "$HERE/mosquitto-local.conf" "$MOSQUITTO_DIR/mosquitto-local.conf"
if [ -f "$MOSQUITTO_DIR/passwd" ]; then
    # a new bundle keeps the local accounts (the devices' password, accounts added by hand): only the
    # gateway service's own account takes this bundle's password, which its gateway.yaml holds
    merged="$(mktemp)"
    grep -v "^$FORWARDER_USER:" "$MOSQUITTO_DIR/passwd" >"$merged" || true
    grep "^$FORWARDER_USER:" "$HERE/mosquitto-passwd" >>"$merged"
    install -m 0640 -o root -g mosquitto "$merged" "$MOSQUITTO_DIR/passwd"
    rm -f "$merged"
    echo "   kept the local accounts: the devices log in as before (not with this bundle's local-devices.txt)"
else
    install -m 0640 -o root -g mosquitto "$HERE/mosquitto-passwd" "$MOSQUITTO_DIR/passwd"
fi
if [ ! -f "$MOSQUITTO_DIR/acl" ]; then
    install -m 0640 -o root -g mosquitto "$HERE/mosquitto-acl" "$MOSQUITTO_DIR/acl"
fi

echo "== systemd units"
install -d -m 0755 "$UNIT_DIR/mosquitto.service.d"
install -m 0644 "$HERE/mosquitto-reallabor.conf" "$UNIT_DIR/mosquitto.service.d/reallabor.conf"
install -m 0644 "$HERE/reallabor-gateway.service" "$UNIT_DIR/reallabor-gateway.service"
systemctl daemon-reload
systemctl enable --quiet mosquitto.service reallabor-gateway.service
systemctl restart mosquitto.service
systemctl restart reallabor-gateway.service

echo "== done: gateway @GATEWAY@ is running"
echo "   its log:    journalctl -u reallabor-gateway -f"
echo "   its check:  sudo reallabor-gateway check --config $CONFIG_DIR/gateway.yaml (after an edit; then"
echo "               sudo systemctl restart reallabor-gateway)"
echo "   its health: lab/@GATEWAY@/health on the central broker, every minute"
