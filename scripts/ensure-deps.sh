#!/usr/bin/env bash
# Makes sure the real programs the integration tests start are installed (Debian/Ubuntu).
# Quiet when everything is there; otherwise installs the missing Debian packages with apt-get
# (as root, or through `sudo -n` when not root) and says what and why. Needs no stdin (CI).
#
#   bash scripts/ensure-deps.sh            # check, install what is missing
#   bash scripts/ensure-deps.sh --check    # only check; exit 1 and list what is missing
set -euo pipefail

check_only=0
[[ "${1:-}" == "--check" ]] && check_only=1

# "what to test" | "Debian package" | "why the tests need it"
checks=(
  "bin:mosquitto|mosquitto|MQTT broker for the trigger and Home Assistant tests"
  "bin:mosquitto_passwd|mosquitto|password file for the broker with credentials"
  "bin:mosquitto_pub|mosquitto-clients|motioneye.sh publishes with it"
  "bin:mosquitto_sub|mosquitto-clients|tests read retained MQTT topics with it"
  "bin:busybox|busybox|motioneye.sh under busybox sh and busybox tools, as on motionEyeOS"
  "bin:dash|dash|motioneye.sh under dash (Debian's /bin/sh)"
  "bin:curl|curl|motioneye.sh's HTTP fallback to the vault's hook"
  "file:/usr/sbin/sshd|openssh-server|a private SFTP server for the destination tests"
  "bin:sftp|openssh-client|OpenSSH sftp client (interop and benchmark)"
  "bin:ssh-keygen|openssh-client|host and client keys for the test sshd"
  "file:/usr/sbin/vsftpd|vsftpd|FTP server standing in for motionEyeOS"
  "bin:age|age|the standard age CLI must decrypt our uploads"
  "bin:age-keygen|age|age identities for the interop tests"
  "bin:python3|python3|makes legacy Fernet files"
  "py:cryptography|python3-cryptography|python3 'cryptography.fernet' for legacy files"
  "bin:rclone|rclone|benchmark baseline"
  "bin:shellcheck|shellcheck|lints the Home Assistant add-on's run script"
  "bin:busybox|busybox|runs the add-on's run script with the shell of its Alpine image"
  "bin:useradd|passwd|the FTP test account"
  "bin:chpasswd|passwd|the FTP test account"
)

have() {
  local what="$1"
  case "$what" in
    bin:*) command -v "${what#bin:}" >/dev/null 2>&1 || [[ -x "/usr/sbin/${what#bin:}" ]] ;;
    file:*) [[ -x "${what#file:}" ]] ;;
    py:*) python3 -c "import ${what#py:}" >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

missing_pkgs=()
reasons=()
for entry in "${checks[@]}"; do
  IFS='|' read -r what pkg why <<<"$entry"
  if ! have "$what"; then
    reasons+=("  ${what#*:} (Debian package $pkg): $why")
    [[ " ${missing_pkgs[*]-} " == *" $pkg "* ]] || missing_pkgs+=("$pkg")
  fi
done

if [[ ${#missing_pkgs[@]} -eq 0 ]]; then
  exit 0
fi

echo "ensure-deps: the integration tests need programs that are missing:" >&2
printf '%s\n' "${reasons[@]}" >&2

if [[ $check_only -eq 1 ]]; then
  echo "ensure-deps: install them with: apt-get install ${missing_pkgs[*]}" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: no apt-get here; install these packages (or their equivalents) yourself: ${missing_pkgs[*]}" >&2
  exit 1
fi

if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "ensure-deps: installing needs root and passwordless sudo is not available." >&2
  echo "ensure-deps: run as root: apt-get update && apt-get install -y ${missing_pkgs[*]}" >&2
  exit 1
fi

echo "ensure-deps: installing with apt-get: ${missing_pkgs[*]}" >&2

# Keep package scripts from starting system services (a system sshd, vsftpd on :21, a
# mosquitto on :1883): the tests run their own on free ports. policy-rc.d exit 101 =
# "action forbidden"; only set when the machine has none, and always removed again.
policy=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
  if [[ $made_policy -eq 1 ]]; then "${as_root[@]}" rm -f "$policy" || true; fi
}
trap cleanup EXIT
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 755 "$policy"
  made_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing_pkgs[@]}" </dev/null >&2

# Check again: report anything still missing (e.g. `python3` on PATH is a pyenv/venv
# interpreter without the module, while Debian's /usr/bin/python3 now has it).
still=()
for entry in "${checks[@]}"; do
  IFS='|' read -r what pkg why <<<"$entry"
  have "$what" || still+=("  ${what#*:} (Debian package $pkg)")
done
if [[ ${#still[@]} -gt 0 ]]; then
  echo "ensure-deps: still missing after apt-get install:" >&2
  printf '%s\n' "${still[@]}" >&2
  if ! python3 -c "import cryptography" >/dev/null 2>&1 && /usr/bin/python3 -c "import cryptography" >/dev/null 2>&1; then
    echo "ensure-deps: note: 'python3' on PATH is $(command -v python3), not Debian's /usr/bin/python3 (which has cryptography)." >&2
  fi
  exit 1
fi
echo "ensure-deps: done; all test dependencies are installed." >&2
