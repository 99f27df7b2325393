#!/bin/sh
# motioneye.sh: tell motioneye-vault that motionEye has a new clip, over MQTT.
#
# Usage: motioneye.sh [CAMERA] [FILE]
#
# motionEye settings (quote the placeholders: motion runs the line through /bin/sh, so an
# unquoted camera name or path with spaces arrives split into several arguments; this script
# puts such pieces back together as best it can, see below):
#   Motion Notifications > Run An End Command:  /path/to/motioneye.sh "%$"
#       motion runs it when the event ends, before the movie file is closed (no file yet):
#       publishes event "event_end" and motioneye-vault syncs that camera.
#   File Storage > Run A Command:               /path/to/motioneye.sh "%$" "%f"
#       motion runs it after the movie is closed: publishes event "movie_end" with the file,
#       and motioneye-vault backs that clip up first.
#
# Payload (JSON, UTF-8):
#   {"camera":"Camera1","file":"/data/output/Camera1/2024-05-01/12-00-00.mp4","event":"movie_end","time":"2024-05-01T12:00:31Z"}
#   without a file: {"camera":"Camera1","event":"event_end","time":"..."}
#
# It never blocks motionEye for long (mosquitto_pub runs under `timeout`) and always exits 0;
# failures go to stderr (motionEye's log). POSIX sh: runs on motionEyeOS's busybox too.

# ---- settings: edit here, or set them in the environment ---------------------------------
MQTT_HOST="${MQTT_HOST:-localhost}"
MQTT_PORT="${MQTT_PORT:-1883}"
MQTT_USER="${MQTT_USER:-}"
MQTT_PASSWORD="${MQTT_PASSWORD:-}"
MQTT_TOPIC="${MQTT_TOPIC:-}"          # empty: motioneye/<camera>/event
MQTT_TIMEOUT="${MQTT_TIMEOUT:-5}"     # seconds mosquitto_pub may take, connect included
MOSQUITTO_PUB="${MOSQUITTO_PUB:-mosquitto_pub}"
# -------------------------------------------------------------------------------------------

log() {
  printf 'motioneye.sh: %s\n' "$*" >&2
}

# JSON string literal (with the quotes) of $1: escapes \ " and control characters.
json_string() {
  printf '%s' "$1" | LC_ALL=C awk '
    function esc(s,    out, i, c) {
      out = ""
      for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\") out = out "\\\\"
        else if (c == "\"") out = out "\\\""
        else if (c in ctrl) out = out ctrl[c]
        else out = out c
      }
      return out
    }
    BEGIN {
      for (i = 1; i < 32; i++) ctrl[sprintf("%c", i)] = sprintf("\\u%04x", i)
      ctrl["\t"] = "\\t"; ctrl["\r"] = "\\r"
      s = ""
    }
    { s = (NR > 1 ? s "\\n" : "") esc($0) }
    END { printf "\"%s\"", s }
  '
}

# ---- arguments ----------------------------------------------------------------------------
# Normally $1 is the camera and $2 the movie (either may be missing or empty). If motion split
# an unquoted camera name or path at its spaces, the first argument starting with "/" begins
# the file and everything before it is the camera name.
camera=""
file=""
prev_camera=""
last=""
count=0
in_file=0
for arg in "$@"; do
  [ -n "$arg" ] || continue
  count=$((count + 1))
  last=$arg
  if [ "$in_file" -eq 0 ]; then
    case $arg in /*) in_file=1 ;; esac
  fi
  if [ "$in_file" -eq 1 ]; then
    file="${file:+$file }$arg"
  else
    prev_camera=$camera
    camera="${camera:+$camera }$arg"
  fi
done
# A relative file (no leading "/"): the last of two or more arguments, if it looks like one.
if [ -z "$file" ] && [ "$count" -ge 2 ]; then
  case $last in
    */* | *.mp4 | *.avi | *.mkv | *.mov | *.MP4 | *.AVI | *.MKV | *.MOV)
      file=$last
      camera=$prev_camera
      ;;
  esac
fi
# Only a file: the camera is the folder above the date folder (<camera>/YYYY-MM-DD/<movie>).
if [ -z "$camera" ] && [ -n "$file" ]; then
  day_dir=$(dirname -- "$file")
  case $(basename -- "$day_dir") in
    [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9])
      camera=$(basename -- "$(dirname -- "$day_dir")")
      ;;
  esac
  case $camera in "" | / | .) camera="" ;; esac
fi
[ -n "$camera" ] || camera=default

if [ -z "$MQTT_TOPIC" ]; then
  # "/" would add topic levels, "+" "#" are wildcards and control characters are refused:
  # none of them may appear in the topic's camera level.
  topic_camera=$(printf '%s' "$camera" | tr '\n' '_' | sed 's/[/+#[:cntrl:]]/_/g')
  MQTT_TOPIC="motioneye/${topic_camera}/event"
fi

# ---- payload ------------------------------------------------------------------------------
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ -n "$file" ]; then
  payload="{\"camera\":$(json_string "$camera"),\"file\":$(json_string "$file"),\"event\":\"movie_end\",\"time\":\"$now\"}"
else
  payload="{\"camera\":$(json_string "$camera"),\"event\":\"event_end\",\"time\":\"$now\"}"
fi

# ---- publish ------------------------------------------------------------------------------
if ! command -v "$MOSQUITTO_PUB" >/dev/null 2>&1; then
  log "$MOSQUITTO_PUB not found (install mosquitto-clients); not published: $payload"
  exit 0
fi

set -- -h "$MQTT_HOST" -p "$MQTT_PORT" -q 1 -t "$MQTT_TOPIC" -m "$payload"

# Credentials go into a private mosquitto_pub options file ($XDG_CONFIG_HOME/mosquitto_pub)
# rather than onto the command line, where any local user could read them with `ps`.
conf_dir=""
cleanup() {
  [ -z "$conf_dir" ] || rm -rf -- "$conf_dir"
}
trap cleanup EXIT
trap 'exit 0' HUP INT TERM
if [ -n "$MQTT_USER" ] || [ -n "$MQTT_PASSWORD" ]; then
  if conf_dir=$(umask 077 && mktemp -d 2>/dev/null); then
    {
      [ -z "$MQTT_USER" ] || printf -- '-u %s\n' "$MQTT_USER"
      [ -z "$MQTT_PASSWORD" ] || printf -- '-P %s\n' "$MQTT_PASSWORD"
    } >"$conf_dir/mosquitto_pub"
    XDG_CONFIG_HOME=$conf_dir
    export XDG_CONFIG_HOME
  else
    conf_dir=""
    [ -z "$MQTT_USER" ] || set -- "$@" -u "$MQTT_USER"
    [ -z "$MQTT_PASSWORD" ] || set -- "$@" -P "$MQTT_PASSWORD"
  fi
fi

if command -v timeout >/dev/null 2>&1; then
  output=$(timeout "$MQTT_TIMEOUT" "$MOSQUITTO_PUB" "$@" 2>&1)
  rc=$?
else
  output=$("$MOSQUITTO_PUB" "$@" 2>&1)
  rc=$?
fi

if [ "$rc" -eq 124 ]; then
  log "mosquitto_pub to $MQTT_HOST:$MQTT_PORT timed out after ${MQTT_TIMEOUT}s; not published to $MQTT_TOPIC: $payload"
elif [ "$rc" -ne 0 ]; then
  log "mosquitto_pub to $MQTT_HOST:$MQTT_PORT failed (exit $rc): ${output:-no output}; not published to $MQTT_TOPIC: $payload"
fi
exit 0
