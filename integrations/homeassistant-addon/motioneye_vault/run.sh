#!/bin/sh
# motionEye Vault add-on: the add-on's options and the Supervisor's MQTT service become the
# vault's config (/data/config.yml), then the vault runs as `motioneye-vault serve`.
#
# Everything it touches can be moved by the environment (the tests run this very script in a
# temporary folder against a stand-in Supervisor): ADDON_DATA_DIR (/data), ADDON_USER_DIR
# (/config), ADDON_OPTIONS_FILE (<data>/options.json), ADDON_CONFIG_FILE (<data>/config.yml),
# SUPERVISOR_URL (http://supervisor), MOTIONEYE_VAULT_HOME (/opt/motioneye-vault).
set -eu

VAULT_HOME="${MOTIONEYE_VAULT_HOME:-/opt/motioneye-vault}"
DATA_DIR="${ADDON_DATA_DIR:-/data}"
export ADDON_CONFIG_FILE="${ADDON_CONFIG_FILE:-${DATA_DIR}/config.yml}"

if [ ! -f "${VAULT_HOME}/dist/cli.js" ]; then
  echo "[motioneye-vault add-on] ${VAULT_HOME}/dist/cli.js is missing: the image is incomplete" >&2
  exit 1
fi

# Exit 2 with one line per problem when an option is wrong; nothing starts then.
node "${VAULT_HOME}/dist/addon/writeConfig.js"

# exec: the vault becomes the process s6 stops with SIGTERM, and it stops cleanly on it.
exec node "${VAULT_HOME}/dist/cli.js" serve --config "${ADDON_CONFIG_FILE}"
