import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { HttpConfig } from "../config/http.js";
import { errorMessage, type Logger } from "../util/log.js";
import type { HealthReport } from "./health.js";
import {
  BadRequestError,
  bearerToken,
  type Fields,
  hookFields,
  readBody,
  tokenMatches,
} from "./httpRequest.js";
import type { Metrics } from "./metrics.js";
import { printable } from "./triggerPayload.js";

/**
 * serve's HTTP listener (node:http, no framework): `/hook` for motionEye's "Call A Web Hook" and
 * motioneye.sh's curl fallback, `/healthz`, `/metrics`. It answers at once and hands hook calls
 * to the controller, which queues them like MQTT triggers. No input crashes it: junk gets a 4xx,
 * a bug a 500, and every request one debug line without the token.
 */

export interface HookAnswer {
  status: 202 | 400;
  body: Record<string, unknown>;
}

export interface HttpListenerDeps {
  config: HttpConfig;
  logger: Logger;
  /** A hook call's fields (the token already checked) to what to answer. */
  hook(fields: Readonly<Fields>): HookAnswer;
  health(): HealthReport;
  metrics: Metrics;
}

/** Requests are small; a client that trickles one this slowly is dropped. */
const REQUEST_TIMEOUT_MS = 15_000;
/** On stop, requests in flight get this long before their connections are cut. */
const STOP_GRACE_MS = 1000;

type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;

export class HttpListener {
  private server: Server | undefined;
  private readonly log: Logger;
  private readonly routes: Map<string, { methods: string[]; handle: Route }>;

  constructor(private readonly deps: HttpListenerDeps) {
    this.log = deps.logger.child({ ext: "http" });
    this.routes = new Map([
      ["/hook", { methods: ["GET", "POST"], handle: (req, res, url) => this.hook(req, res, url) }],
      ["/healthz", { methods: ["GET", "HEAD"], handle: async (_req, res) => this.healthz(res) }],
      [
        "/metrics",
        { methods: ["GET", "HEAD"], handle: (req, res, url) => this.metrics(req, res, url) },
      ],
    ]);
  }

  /** The address it listens on, once listening. */
  get address(): { host: string; port: number } | undefined {
    const a = this.server?.address();
    return a && typeof a === "object" ? { host: a.address, port: a.port } : undefined;
  }

  /**
   * Listens on http.host:http.port. A port that is taken is logged and the service goes on
   * without the listener (backups never stop for it): resolves false then.
   */
  async start(): Promise<boolean> {
    const { host, port } = this.deps.config;
    const server = createServer((req, res) => void this.onRequest(req, res));
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = REQUEST_TIMEOUT_MS;
    server.maxHeadersCount = 64;
    server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      // A request Node cannot parse (or a client that went away): 400 when it can still hear it.
      this.log.debug({ err: err.code ?? errorMessage(err) }, "http: unreadable request");
      if (socket.writable && err.code !== "ECONNRESET") {
        socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      } else {
        socket.destroy();
      }
    });
    const listening = await new Promise<boolean>((resolve) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.log.error(
          { host, port, err: err.code ?? errorMessage(err) },
          `http: cannot listen on ${host}:${port}; the web hook, /healthz and /metrics are off (set http.port, or 0 to disable it)`,
        );
        resolve(false);
      };
      server.once("error", onError);
      server.listen({ host, port }, () => {
        server.off("error", onError);
        resolve(true);
      });
    });
    if (!listening) return false;
    server.on("error", (err) => this.log.error({ err: errorMessage(err) }, "http: server error"));
    this.server = server;
    const bound = this.address;
    this.log.info(
      { host: bound?.host, port: bound?.port, auth: this.deps.config.token ? "token" : "none" },
      "http: listening for /hook, /healthz and /metrics",
    );
    return true;
  }

  /** Stops taking requests; those in flight get a moment, then their connections are cut. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), STOP_GRACE_MS);
    await closed;
    clearTimeout(timer);
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? "";
    let path = "/";
    res.once("close", () => {
      this.log.debug(
        {
          method: printable(method),
          path,
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
        },
        "http request",
      );
    });
    try {
      const url = parseUrl(req.url);
      path = this.loggable(url.pathname);
      const route = this.routes.get(url.pathname);
      if (!route) return send(res, 404, { error: "not found: try /hook, /healthz or /metrics" });
      if (!route.methods.includes(method)) {
        return send(
          res,
          405,
          { error: `method ${printable(method)} is not allowed here` },
          {
            Allow: route.methods.join(", "),
          },
        );
      }
      await route.handle(req, res, url);
    } catch (err) {
      if (err instanceof BadRequestError) {
        send(res, 400, { error: err.message });
        return;
      }
      this.log.error({ path, err: errorMessage(err) }, "http: request failed");
      if (!res.headersSent) send(res, 500, { error: "internal error" });
      else res.destroy();
    }
  }

  private async hook(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const fields = hookFields(url, req.headers["content-type"], await readBody(req));
    if (!this.authorized(req, fields.token)) return this.unauthorized(res);
    const { token: _token, ...rest } = fields;
    const answer = this.deps.hook(rest);
    send(res, answer.status, answer.body);
  }

  private healthz(res: ServerResponse): void {
    const report = this.deps.health();
    send(res, report.ok ? 200 : 503, report);
  }

  private async metrics(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!this.authorized(req, url.searchParams.get("token") ?? undefined)) {
      return this.unauthorized(res);
    }
    const text = await this.deps.metrics.render();
    res.writeHead(200, {
      "Content-Type": this.deps.metrics.contentType,
      "Cache-Control": "no-store",
      Connection: "close",
    });
    res.end(text);
  }

  /** True without a configured token; else the Bearer header or the `token` field must match. */
  private authorized(req: IncomingMessage, fieldToken: unknown): boolean {
    const expected = this.deps.config.token;
    if (!expected) return true;
    return tokenMatches(expected, bearerToken(req)) || tokenMatches(expected, fieldToken);
  }

  private unauthorized(res: ServerResponse): void {
    send(
      res,
      401,
      { error: "a valid token is required (token field or Authorization: Bearer)" },
      {
        "WWW-Authenticate": 'Bearer realm="motioneye-vault"',
      },
    );
  }

  /** The path for the log: printable, and never the token, should someone put it there. */
  private loggable(pathname: string): string {
    const token = this.deps.config.token;
    const clean = token ? pathname.split(token).join("[redacted]") : pathname;
    return printable(clean);
  }
}

function parseUrl(raw: string | undefined): URL {
  try {
    return new URL(raw ?? "/", "http://vault.invalid");
  } catch {
    throw new BadRequestError("the request's URL does not parse");
  }
}

function send(
  res: ServerResponse,
  status: number,
  body: object,
  headers: Record<string, string> = {},
): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
    // One request per connection: callers are a hook or a scrape every few seconds at most, and
    // a kept-alive socket that the server closes just as a client reuses it fails that request.
    Connection: "close",
    ...headers,
  });
  res.end(text);
}
