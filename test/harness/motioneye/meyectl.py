#!/usr/bin/env python3
"""A stand-in for motionEye's `meyectl`, for the motion test harness (test/harness/motion.ts).

motionEye writes motion's event commands as `meyectl relayevent ...` and
`meyectl webhook METHOD URL`; this script answers those two the way motionEye does and
records every call, one JSON line each, in $MEVAULT_HOOK_LOG (O_APPEND: atomic lines):

  relayevent EVENT CAMERA_ID [FILE]   motionEye's relay to its server; here: only recorded
                                      (the harness plays the server: it makes the `.thumb`).
  webhook [-c CONF] METHOD URL        motionEye's "Call A Web Hook" (motioneye/webhook.py):
                                      GET: the URL as is; POST: an empty text/plain body;
                                      POSTf: the query as a form body; POSTj: the query's
                                      fields as a JSON object (first value of each); both
                                      drop the query from the URL. Failures are logged only.
  record NAME ARGS...                 just records its arguments (to see what motion passed).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_SECONDS = 10  # motionEye's settings.REMOTE_REQUEST_TIMEOUT


def record(entry):
    entry = {"t": int(time.time() * 1000), **entry}
    path = os.environ.get("MEVAULT_HOOK_LOG")
    if not path:
        print("meyectl: " + json.dumps(entry), file=sys.stderr)
        return
    line = (json.dumps(entry) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def webhook(method, url):
    headers = {}
    data = None
    parts = urllib.parse.urlparse(url)
    if method == "POST":
        headers["Content-Type"] = "text/plain"
        data = b""
    elif method == "POSTf":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        data = parts.query.encode("utf-8")
        url = url.split("?")[0]
    elif method == "POSTj":
        headers["Content-Type"] = "application/json"
        fields = urllib.parse.parse_qs(parts.query)
        data = json.dumps({k: v[0] for (k, v) in fields.items()}).encode("utf-8")
        url = url.split("?")[0]
    request = urllib.request.Request(url, data, headers=headers)
    entry = {"hook": "webhook", "method": method, "url": url}
    if data is not None:
        entry["body"] = data.decode("utf-8")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            entry["status"] = response.status
    except urllib.error.HTTPError as e:
        entry["status"] = e.code
        entry["error"] = str(e)
    except Exception as e:  # motionEye logs and goes on
        entry["error"] = str(e)
    record(entry)


def main(argv):
    if len(argv) < 1:
        print("usage: meyectl.py relayevent|webhook|record ...", file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "relayevent":
        record({"hook": "relayevent", "event": args[0] if args else "", "args": args[1:]})
    elif command == "webhook":
        # meyectl's common options come before the command's own: drop `-c FILE` / `-d`
        while args and args[0].startswith("-"):
            args = args[2:] if args[0] == "-c" else args[1:]
        if len(args) != 2:
            record({"hook": "webhook", "error": "bad arguments", "args": args})
            return 0
        webhook(args[0], args[1])
    elif command == "record":
        record({"hook": "record", "event": args[0] if args else "", "args": args[1:]})
    else:
        print("meyectl.py: unknown command " + command, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
