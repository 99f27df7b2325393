import { runCommand } from "./processes.js";

/** The four methods of motionEye's "Call A Web Hook". */
export type WebhookMethod = "GET" | "POST" | "POSTf" | "POSTj";

/**
 * motionEye's web hook as `meyectl webhook METHOD URL` sends it, in Python's urllib like
 * motionEye itself: GET sends the URL as it is; POST an empty text/plain body to it; POSTf the
 * query as a form body and POSTj the query's fields as a JSON object, both to the URL without
 * its query. `url` is the line after motion substituted %$ and %f (not URL-encoded).
 * Resolves with the HTTP status and body the hook answered.
 */
export async function motioneyeWebhook(
  method: WebhookMethod,
  url: string,
): Promise<{ status: number; body: string }> {
  const run = await runCommand("python3", ["-c", PYTHON, method, url], { timeoutMs: 20_000 });
  const [status, ...body] = run.stdout.split("\n");
  return { status: Number(status), body: body.join("\n").trim() };
}

const PYTHON = `
import json, sys, urllib.error, urllib.parse, urllib.request
method, url = sys.argv[1], sys.argv[2]
parts = urllib.parse.urlparse(url)
headers = {"User-Agent": "motionEye"}
data = None
if method == "POST":
    headers["Content-Type"] = "text/plain"
    data = b""
elif method == "POSTf":
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    data = parts.query.encode()
    url = url.split("?")[0]
elif method == "POSTj":
    headers["Content-Type"] = "application/json"
    fields = {k: v[0] for (k, v) in urllib.parse.parse_qs(parts.query).items()}
    data = json.dumps(fields).encode()
    url = url.split("?")[0]
try:
    with urllib.request.urlopen(urllib.request.Request(url, data, headers=headers), timeout=10) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
`;
