#!/bin/sh
# motioneye.sh: tell motioneye-vault that motionEye has a new clip, over MQTT (mosquitto_pub)
# or the vault's HTTP hook (curl).
#
# Usage: motioneye.sh [CAMERA] [FILE]
#
# motionEye settings (quote the placeholders: motion runs the line through /bin/sh, so an
# unquoted camera name or path with spaces arrives split into several arguments; this script
# puts such pieces back together as best it can, see below):
#   File Storage > Run A Command:               /path/to/motioneye.sh "%$" "%f"
#       motion runs it after closing a movie (event "movie_end", and the vault backs that
#       clip up first) and after saving each picture (event "picture_save": the vault ignores
#       it unless source.extensions lists pictures).
#   Motion Notifications > Run An End Command:  /path/to/motioneye.sh "%$"
#       motion runs it when the event ends, before the movie is closed: event "event_end",
#       no file; the vault syncs and comes back for the movie once it is complete.
#
# Payload (JSON, UTF-8), the same over MQTT and HTTP:
#   {"camera":"Camera1","file":"/var/lib/motioneye/Camera1/2024-05-01/12-00-00.mp4","event":"movie_end","time":"2024-05-01T12:00:31Z"}
#   without a file: {"camera":"Camera1","event":"event_end","time":"..."}
#   plus "source":"<VAULT_SOURCE>" when that is set, and over HTTP "token":"<VAULT_TOKEN>".
#
# How it is sent: with VAULT_URL set, curl POSTs it to $VAULT_URL/hook; otherwise
# mosquitto_pub publishes it on MQTT_TOPIC; motionEyeOS has no mosquitto_pub, so set VAULT_URL
# there. Either way it waits at most MQTT_TIMEOUT / VAULT_TIMEOUT seconds (GNU or busybox
# `timeout`, or its own watchdog where there is none), always exits 0, and says what went wrong
# on stderr (motionEye's log). POSIX sh: busybox sh (motionEyeOS), dash and bash.
#
# Settings: the variables below. Each can instead come from a file `motioneye.env` beside this
# script (KEY=value lines, see motioneye.env.example; MOTIONEYE_ENV names another file), so no
# password is typed into motionEye's fields, or from the environment, which wins over both.

log() {
  printf 'motioneye.sh: %s\n' "$*" >&2
}

# Fills in the settings the environment leaves empty from KEY=value lines (optionally quoted,
# optionally `export KEY=value`); comments and blank lines are skipped. Parsed, never sourced.
load_env_file() {
  [ -r "$1" ] || return 0
  cr=$(printf '\r')
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%"$cr"}
    line=${line#"${line%%[! 	]*}"}
    case $line in '' | '#'*) continue ;; esac
    line=${line#export }
    key=${line%%=*}
    [ "$key" != "$line" ] || continue
    value=${line#*=}
    case $value in
      \"*\")
        value=${value#\"}
        value=${value%\"}
        ;;
      \'*\')
        value=${value#\'}
        value=${value%\'}
        ;;
    esac
    case $key in
      MQTT_HOST | MQTT_PORT | MQTT_USER | MQTT_PASSWORD | MQTT_TOPIC | MQTT_TIMEOUT | \
        VAULT_URL | VAULT_TOKEN | VAULT_SOURCE | VAULT_TIMEOUT | MOSQUITTO_PUB | CURL)
        eval "[ -n \"\${$key}\" ] || $key=\$value"
        ;;
      *) log "$1: unknown setting '$key' ignored" ;;
    esac
  done <"$1"
}
case $0 in */*) script_dir=${0%/*} ;; *) script_dir=. ;; esac
load_env_file "${MOTIONEYE_ENV:-$script_dir/motioneye.env}"

# ---- settings: edit here, or in motioneye.env, or set them in the environment -------------
MQTT_HOST="${MQTT_HOST:-localhost}"
MQTT_PORT="${MQTT_PORT:-1883}"
MQTT_USER="${MQTT_USER:-}"
MQTT_PASSWORD="${MQTT_PASSWORD:-}"
MQTT_TOPIC="${MQTT_TOPIC:-}"          # empty: motioneye/<camera>/event
MQTT_TIMEOUT="${MQTT_TIMEOUT:-5}"     # seconds mosquitto_pub may take, connect included
VAULT_URL="${VAULT_URL:-}"            # e.g. http://192.168.1.10:8099: send to the HTTP hook
VAULT_TOKEN="${VAULT_TOKEN:-}"        # the vault's http.token
VAULT_SOURCE="${VAULT_SOURCE:-}"      # the vault's source name for this camera device, if any
VAULT_TIMEOUT="${VAULT_TIMEOUT:-5}"   # seconds curl may take, connect included
MOSQUITTO_PUB="${MOSQUITTO_PUB:-mosquitto_pub}"
CURL="${CURL:-curl}"
# -------------------------------------------------------------------------------------------

# JSON string literal (with the quotes) of $1: escapes \ " and control characters (with awk,
# only when there are any: every process costs on a small camera).
json_string() {
  case $1 in
    *[\\\"]* | *[[:cntrl:]]*) ;;
    *)
      printf '"%s"' "$1"
      return
      ;;
  esac
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

# A whole number of seconds, or the default: `timeout` and the watchdog count whole seconds.
seconds() {
  case $1 in '' | *[!0-9]*) echo 5 ;; *) echo "$1" ;; esac
}

# ---- arguments ----------------------------------------------------------------------------
# Normally $1 is the camera and $2 the file (either may be missing or empty). If motion split
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
    */* | *.mp4 | *.avi | *.mkv | *.mov | *.MP4 | *.AVI | *.MKV | *.MOV | *.jpg | *.JPG)
      file=$last
      camera=$prev_camera
      ;;
  esac
fi
# Only a file: the camera is the folder above the date folder (<camera>/YYYY-MM-DD/<file>).
if [ -z "$camera" ] && [ -n "$file" ]; then
  case $file in
    */*)
      day_dir=${file%/*}
      case ${day_dir##*/} in
        [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9])
          case $day_dir in
            */*)
              camera_dir=${day_dir%/*}
              camera=${camera_dir##*/}
              ;;
          esac
          ;;
      esac
      ;;
  esac
fi
[ -n "$camera" ] || camera=default

# The event: motion runs the storage command for movies and for pictures alike.
if [ -z "$file" ]; then
  event=event_end
else
  case ${file##*/} in
    *.[mM][pP]4 | *.[mM][kK][vV] | *.[aA][vV][iI] | *.[mM][oO][vV] | *.[wW][eE][bB][mM] | \
      *.[fF][lL][vV] | *.[sS][wW][fF] | *.[mM]4[vV] | *.[mM][pP][gG] | *.[mM][pP][eE][gG] | *.3[gG][pP])
      event=movie_end
      ;;
    *) event=picture_save ;;
  esac
fi

# ---- payload ------------------------------------------------------------------------------
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fields="\"camera\":$(json_string "$camera")"
[ -z "$file" ] || fields="$fields,\"file\":$(json_string "$file")"
fields="$fields,\"event\":\"$event\""
[ -z "$VAULT_SOURCE" ] || fields="$fields,\"source\":$(json_string "$VAULT_SOURCE")"
fields="$fields,\"time\":\"$now\""
payload="{$fields}"

# ---- a bounded wait -----------------------------------------------------------------------
# GNU timeout and busybox >= 1.30 take `timeout SECS PROG`; older busybox `timeout -t SECS PROG`;
# without any, a watchdog in the background kills the program.
if ! command -v timeout >/dev/null 2>&1; then
  timeout_style=none
elif timeout 5 true >/dev/null 2>&1; then
  timeout_style=plain
elif timeout -t 5 true >/dev/null 2>&1; then
  timeout_style=dash_t
else
  timeout_style=none
fi
case $timeout_style in
  plain) stopper="timeout" ;;
  dash_t) stopper="timeout -t" ;;
  *) stopper="this script's watchdog" ;;
esac

# bounded SECS IN OUT ERR PROG ARGS...: runs PROG with stdin IN, stdout OUT and stderr ERR,
# stopped after SECS seconds. Sets rc (its exit status) and timed_out (1 when it was stopped).
bounded() {
  secs=$(seconds "$1")
  b_in=$2 b_out=$3 b_err=$4
  shift 4
  timed_out=0
  case $timeout_style in
    plain)
      timeout "$secs" "$@" <"$b_in" >"$b_out" 2>"$b_err"
      rc=$?
      ;;
    dash_t)
      timeout -t "$secs" "$@" <"$b_in" >"$b_out" 2>"$b_err"
      rc=$?
      ;;
    *)
      "$@" <"$b_in" >"$b_out" 2>"$b_err" &
      b_pid=$!
      # The watchdog's own output goes nowhere: no open pipe of ours outlives this script.
      (
        i=0
        while [ "$i" -lt "$secs" ] && kill -0 "$b_pid" 2>/dev/null; do
          sleep 1
          i=$((i + 1))
        done
        kill "$b_pid" 2>/dev/null
      ) </dev/null >/dev/null 2>&1 &
      b_watchdog=$!
      # (busybox sh would print "Terminated" for a program the watchdog stopped)
      wait "$b_pid" 2>/dev/null
      rc=$?
      kill "$b_watchdog" 2>/dev/null
      ;;
  esac
  case $rc in 124 | 137 | 143) timed_out=1 ;; esac
}

# ---- send ---------------------------------------------------------------------------------
tmp=""
cleanup() {
  [ -z "$tmp" ] || rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 0' HUP INT TERM
# A private folder (mode 0700) for credentials and captured output: nothing secret goes on a
# command line, where any local user could read it with `ps`.
tmp=$(umask 077 && mktemp -d 2>/dev/null) || tmp=""
if [ -z "$tmp" ]; then
  log "cannot make a temporary folder (mktemp -d); not sent: $payload"
  exit 0
fi

first_line() {
  [ -s "$1" ] || return 0
  tr '\n' ' ' <"$1" | cut -c1-300 | sed 's/ *$//'
}

send_http() {
  url=${VAULT_URL%/}
  case $url in */hook) ;; *) url="$url/hook" ;; esac
  if ! command -v "$CURL" >/dev/null 2>&1; then
    log "curl not found; not sent to $url: $payload"
    return
  fi
  body=$payload
  [ -z "$VAULT_TOKEN" ] || body="{$fields,\"token\":$(json_string "$VAULT_TOKEN")}"
  printf '%s' "$body" >"$tmp/body"
  secs=$(seconds "$VAULT_TIMEOUT")
  bounded "$secs" /dev/null "$tmp/status" "$tmp/err" "$CURL" -sS -o "$tmp/answer" \
    -w '%{http_code}' --connect-timeout "$secs" --max-time "$secs" -X POST \
    -H 'Content-Type: application/json' --data-binary "@$tmp/body" "$url"
  status=""
  read -r status <"$tmp/status" 2>/dev/null
  if [ "$timed_out" -eq 1 ]; then
    log "the vault at $url did not answer within ${secs}s (stopped by $stopper); not sent: $payload"
  elif [ "$rc" -ne 0 ]; then
    log "curl to $url failed (exit $rc): $(first_line "$tmp/err"); not sent: $payload"
  else
    case $status in
      2??) ;;
      401) log "the vault at $url refused the token (HTTP 401): check VAULT_TOKEN; not sent: $payload" ;;
      *) log "the vault at $url answered HTTP $status: $(first_line "$tmp/answer"); not sent: $payload" ;;
    esac
  fi
}

send_mqtt() {
  if [ -z "$MQTT_TOPIC" ]; then
    # "/" would add topic levels, "+" "#" are wildcards and control characters are refused:
    # none of them may appear in the topic's camera level.
    topic_camera=$camera
    case $camera in
      */* | *[+#]* | *[[:cntrl:]]*)
        topic_camera=$(printf '%s' "$camera" | tr '\n' '_' | sed 's/[/+#[:cntrl:]]/_/g')
        ;;
    esac
    MQTT_TOPIC="motioneye/${topic_camera}/event"
  fi
  set -- -h "$MQTT_HOST" -p "$MQTT_PORT" -q 1 -t "$MQTT_TOPIC" -m "$payload"
  # Credentials go into a private mosquitto_pub options file ($XDG_CONFIG_HOME/mosquitto_pub).
  if [ -n "$MQTT_USER" ] || [ -n "$MQTT_PASSWORD" ]; then
    {
      [ -z "$MQTT_USER" ] || printf -- '-u %s\n' "$MQTT_USER"
      [ -z "$MQTT_PASSWORD" ] || printf -- '-P %s\n' "$MQTT_PASSWORD"
    } >"$tmp/mosquitto_pub"
    XDG_CONFIG_HOME=$tmp
    export XDG_CONFIG_HOME
  fi
  secs=$(seconds "$MQTT_TIMEOUT")
  bounded "$secs" /dev/null "$tmp/out" "$tmp/err" "$MOSQUITTO_PUB" "$@"
  if [ "$timed_out" -eq 1 ]; then
    log "mosquitto_pub to $MQTT_HOST:$MQTT_PORT timed out after ${secs}s (stopped by $stopper); not published to $MQTT_TOPIC: $payload"
  elif [ "$rc" -ne 0 ]; then
    output="$(first_line "$tmp/err")$(first_line "$tmp/out")"
    log "mosquitto_pub to $MQTT_HOST:$MQTT_PORT failed (exit $rc): ${output:-no output}; not published to $MQTT_TOPIC: $payload"
  fi
}

if [ -n "$VAULT_URL" ]; then
  send_http
elif command -v "$MOSQUITTO_PUB" >/dev/null 2>&1; then
  send_mqtt
else
  log "$MOSQUITTO_PUB not found: set VAULT_URL (e.g. http://192.168.1.10:8099) and VAULT_TOKEN in motioneye.env to send with curl to the vault's HTTP hook, or install mosquitto-clients; not sent: $payload"
fi
exit 0
