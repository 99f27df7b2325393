import { timingSafeEqual } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { Aedes, type AedesOptions, type AuthenticateError } from "aedes";
import type { Logger } from "../util/log.js";

/**
 * The embedded MQTT broker (aedes, MQTT 3.1.1) that `serve` runs when no `mqtt.url` is set, so
 * motioneye.sh (and Home Assistant) still have a broker to publish to. Bound to loopback by
 * default; with mqtt.username/password set it requires them.
 */

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  logger: Logger;
}

export interface EmbeddedBroker {
  /** What our own client connects to. */
  url: string;
  close(): Promise<void>;
}

function sameSecret(given: Buffer | string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const options: AedesOptions = {};
  if (opts.username !== undefined || opts.password !== undefined) {
    const user = opts.username ?? "";
    const password = opts.password ?? "";
    options.authenticate = (_client, username, given, done) => {
      if (sameSecret(username, user) && sameSecret(given, password)) {
        done(null, true);
        return;
      }
      const err = new Error("bad username or password") as AuthenticateError;
      err.returnCode = 4;
      done(err, null);
    };
  }
  const aedes = await Aedes.createBroker(options);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    aedes.handle(socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port, opts.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(
      `the embedded MQTT broker cannot listen on ${opts.host}:${opts.port} (${code}): if another broker runs there, set mqtt.url to use it; else pick mqtt.embeddedBroker.port`,
    );
  }
  const wildcard = opts.host === "0.0.0.0" || opts.host === "::" || opts.host === "";
  const connectHost = wildcard
    ? "127.0.0.1"
    : opts.host.includes(":")
      ? `[${opts.host}]`
      : opts.host;
  opts.logger.info(
    { host: opts.host, port: opts.port },
    `no mqtt.url set: running the embedded MQTT broker (aedes) on ${opts.host}:${opts.port}; point motioneye.sh (MQTT_HOST/MQTT_PORT) and Home Assistant at it`,
  );
  return {
    url: `mqtt://${connectHost}:${opts.port}`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await closed;
    },
  };
}
