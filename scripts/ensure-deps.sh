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
  "bin:ssh|openssh-client|destination.transport: openssh runs it"
  "bin:ssh-keyscan|openssh-client|destination.transport: openssh learns the host key with it"
  "bin:taskset|util-linux|the benchmark's one-core figure"
  "file:/usr/sbin/vsftpd|vsftpd|FTP server standing in for motionEyeOS"
  "bin:age|age|the standard age CLI must decrypt our uploads"
  "bin:age-keygen|age|age identities for the interop tests"
  "bin:python3|python3|makes legacy Fernet files"
  "py:cryptography|python3-cryptography|python3 'cryptography.fernet' for legacy files"
  "py:boto3|python3-boto3|boto3 lists, downloads and uploads to the test S3 server (interop, benchmark)"
  "bin:openssl|openssl|a throwaway CA for the S3-over-TLS test"
  "bin:rclone|rclone|benchmark baseline"
  "bin:ffmpeg|ffmpeg|makes test videos; the Telegram bot cuts, thumbnails and previews clips with it"
  "bin:ffprobe|ffmpeg|the Telegram bot reads a clip's duration and size; tests check the parts play"
  "bin:shellcheck|shellcheck|lints the Home Assistant add-on's run script"
  "bin:busybox|busybox|runs the add-on's run script with the shell of its Alpine image"
  "bin:useradd|passwd|the FTP test account"
  "bin:chpasswd|passwd|the FTP test account"
  "file:/usr/bin/motion|motion|the real motion daemon records the camera tests' movies"
  "bin:ffmpeg|ffmpeg|renders the test camera's frames, motionEye's .thumb files, Telegram splits"
  "bin:ffprobe|ffmpeg|checks that backed-up movies are playable"
  "bin:busybox|busybox|motioneye.sh under busybox sh, as on motionEyeOS"
  "bin:curl|curl|motioneye.sh's HTTP fallback (motionEyeOS has no mosquitto_pub)"
  "bin:openssl|openssl|the password hash of the test ProFTPD's user"
  "bin:apt-get|apt|unpacks Debian's proftpd-core for the ProFTPD tests (see below)"
  "bin:dpkg-deb|dpkg|unpacks Debian's proftpd-core for the ProFTPD tests"
)

# ProFTPD (what motionEyeOS runs) cannot be installed next to vsftpd (Debian's proftpd-core
# conflicts with it), so it is unpacked, not installed, into a cache folder that
# test/harness/proftpd.ts reads; the libraries it links to are installed as usual.
cache_root="${MEVAULT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/motioneye-vault}"
proftpd_dir="$cache_root/proftpd"
proftpd_bin="$proftpd_dir/root/usr/sbin/proftpd"

proftpd_ready() {
  [[ -x $proftpd_bin ]] && ! ldd "$proftpd_bin" 2>/dev/null | grep -q "not found"
}

# apt-get download + dpkg -x into $proftpd_dir (idempotent), then the missing libraries.
unpack_proftpd() {
  if [[ ! -x $proftpd_bin ]]; then
    echo "ensure-deps: unpacking Debian's proftpd-core into $proftpd_dir (not installed: it conflicts with vsftpd)" >&2
    local tmp
    tmp=$(mktemp -d)
    chmod 755 "$tmp" # apt-get download runs as _apt when it can
    if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root proftpd-core </dev/null >&2 2>&1); then
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
      (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root proftpd-core </dev/null >&2 2>&1)
    fi
    mkdir -p "$proftpd_dir"
    rm -rf "$proftpd_dir/root"
    dpkg-deb -x "$tmp"/proftpd-core_*.deb "$proftpd_dir/root"
    dpkg-deb -f "$tmp"/proftpd-core_*.deb Version >"$proftpd_dir/version"
    # the libraries it links to: every lib* package among its Depends
    dpkg-deb -f "$tmp"/proftpd-core_*.deb Depends | tr ',' '\n' | sed 's/([^)]*)//g; s/|.*//; s/ //g' |
      grep '^lib' >"$proftpd_dir/library-packages" || true
    rm -rf "$tmp"
  fi
  if ldd "$proftpd_bin" | grep -q "not found"; then
    local libs=()
    while IFS= read -r pkg; do
      [[ -n $pkg ]] || continue
      dpkg -s "$pkg" >/dev/null 2>&1 || libs+=("$pkg")
    done <"$proftpd_dir/library-packages"
    if [[ ${#libs[@]} -gt 0 ]]; then
      echo "ensure-deps: installing ProFTPD's libraries: ${libs[*]}" >&2
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${libs[@]}" </dev/null >&2 ||
        { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2 &&
          "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${libs[@]}" </dev/null >&2; }
    fi
  fi
  if ! proftpd_ready; then
    echo "ensure-deps: ProFTPD at $proftpd_bin still misses libraries:" >&2
    ldd "$proftpd_bin" | grep "not found" >&2 || true
    return 1
  fi
}

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

if [[ ${#missing_pkgs[@]} -eq 0 ]] && proftpd_ready; then
  exit 0
fi

if [[ ${#missing_pkgs[@]} -gt 0 ]]; then
  echo "ensure-deps: the integration tests need programs that are missing:" >&2
  printf '%s\n' "${reasons[@]}" >&2
fi

if [[ $check_only -eq 1 ]]; then
  [[ ${#missing_pkgs[@]} -eq 0 ]] || echo "ensure-deps: install them with: apt-get install ${missing_pkgs[*]}" >&2
  proftpd_ready || echo "ensure-deps: ProFTPD is not unpacked (with its libraries) at $proftpd_dir: run this script without --check" >&2
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
  echo "ensure-deps: run as root: apt-get update && apt-get install -y ${missing_pkgs[*]}, then this script" >&2
  exit 1
fi

[[ ${#missing_pkgs[@]} -eq 0 ]] || echo "ensure-deps: installing with apt-get: ${missing_pkgs[*]}" >&2

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
if [[ ${#missing_pkgs[@]} -gt 0 ]]; then
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing_pkgs[@]}" </dev/null >&2
fi

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
unpack_proftpd || exit 1
echo "ensure-deps: done; all test dependencies are installed." >&2
