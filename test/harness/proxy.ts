/**
 * A loopback TCP fault proxy: put it between a client and a real server (point the client at
 * `proxy.port`) and make the connection fail on purpose.
 *
 * Modes (`setMode`, effective at once, also for connections already open):
 *  - `pass`: forward everything. (Leaving `stall` for any mode sends the held data on,
 *    through the new mode.)
 *  - `cut`: once `afterBytes` more bytes have passed in `direction` ("up" = client to server,
 *    "down" = server to client, "both" = the two added up; default "both"), forward exactly
 *    up to that count and then reset both sockets (ECONNRESET on both sides). Bytes are
 *    counted per connection, from the connection's start or from the `setMode` call for a
 *    connection that was already open.
 *  - `stall`: after `afterBytes` more bytes (default 0, both directions), hold all data
 *    without closing anything: the peers see a silent connection (timeouts). A stalled
 *    connection is not read, so it stays open until the mode changes, `dropConnections()`
 *    or `close()`, even when a peer gave up.
 *  - `refuse`: new connections are reset at once (open ones are left alone; see
 *    `dropConnections()`).
 *
 * It handles protocols that live on one TCP connection, like SSH/SFTP and MQTT. FTP is not
 * covered end to end: its data connections go straight to the server's passive ports (the
 * PASV/EPSV replies are not rewritten), so only the control connection passes the proxy.
 */
import net from "node:net";

export type FaultMode =
  | { kind: "pass" }
  | { kind: "cut"; afterBytes: number; direction?: "up" | "down" | "both" }
  | { kind: "stall"; afterBytes?: number }
  | { kind: "refuse" };

export interface FaultProxyStats {
  /** Connections accepted (including refused ones). */
  connections: number;
  /** Connections cut by a `cut` mode. */
  cuts: number;
  /** Connections reset by `refuse`. */
  refused: number;
  /** Bytes forwarded client -> server / server -> client, all connections. */
  bytesUp: number;
  bytesDown: number;
  /** Connections open right now. */
  open: number;
}

export interface FaultProxy extends Readonly<FaultProxyStats> {
  host: "127.0.0.1";
  port: number;
  target: { host: string; port: number };
  readonly mode: FaultMode;
  setMode(mode: FaultMode): void;
  /** A snapshot of the counters. */
  stats(): FaultProxyStats;
  /** Resets every open connection now (whatever the mode). */
  dropConnections(): void;
  /** Stops listening and resets every open connection. */
  close(): Promise<void>;
}

type Direction = "up" | "down";

interface Connection {
  client: net.Socket;
  upstream: net.Socket;
  sent: { up: number; down: number };
  baseline: { up: number; down: number };
  held: { up: Buffer[]; down: Buffer[] };
  /** Being cut: the last allowed bytes are on their way, everything else is dropped. */
  cutting: boolean;
  dead: boolean;
}

/** Starts a proxy on 127.0.0.1 (`opts.port`, default a free one) to `target`. */
export async function startFaultProxy(
  target: { host: string; port: number },
  opts: { port?: number; mode?: FaultMode } = {},
): Promise<FaultProxy> {
  let mode: FaultMode = opts.mode ?? { kind: "pass" };
  const counters = { connections: 0, cuts: 0, refused: 0, bytesUp: 0, bytesDown: 0 };
  const open = new Set<Connection>();

  const reset = (c: Connection) => {
    if (c.dead) return;
    c.dead = true;
    open.delete(c);
    for (const s of [c.client, c.upstream]) {
      if (typeof s.resetAndDestroy === "function" && s.readyState !== "opening") {
        s.resetAndDestroy();
      } else {
        s.destroy();
      }
    }
  };

  const socketsFor = (c: Connection, dir: Direction) =>
    dir === "up" ? { from: c.client, to: c.upstream } : { from: c.upstream, to: c.client };

  const forward = (c: Connection, dir: Direction, chunk: Buffer, then?: () => void) => {
    const { from, to } = socketsFor(c, dir);
    c.sent[dir] += chunk.length;
    if (dir === "up") counters.bytesUp += chunk.length;
    else counters.bytesDown += chunk.length;
    const flushed = to.write(chunk, then ? () => then() : undefined);
    if (!flushed && !c.dead) {
      from.pause();
      to.once("drain", () => {
        if (!c.dead && !c.cutting && c.held[dir].length === 0) from.resume();
      });
    }
  };

  /** Counted bytes since the mode applied, for the cut/stall limits. */
  const counted = (c: Connection, which: "up" | "down" | "both") => {
    const up = c.sent.up - c.baseline.up;
    const down = c.sent.down - c.baseline.down;
    return which === "up" ? up : which === "down" ? down : up + down;
  };

  const onData = (c: Connection, dir: Direction, chunk: Buffer) => {
    if (c.dead || c.cutting) return;
    if (c.held[dir].length > 0) {
      // keep the order: stalled data goes out first
      c.held[dir].push(chunk);
      return;
    }
    const m = mode;
    if (m.kind === "pass" || m.kind === "refuse") {
      forward(c, dir, chunk);
      return;
    }
    if (m.kind === "cut") {
      const which = m.direction ?? "both";
      if (which !== "both" && which !== dir) {
        forward(c, dir, chunk);
        return;
      }
      const left = m.afterBytes - counted(c, which);
      if (chunk.length < left) {
        forward(c, dir, chunk);
        return;
      }
      counters.cuts++;
      c.cutting = true;
      c.client.pause();
      c.upstream.pause();
      if (left > 0) {
        // deliver exactly the allowed bytes, then cut once they left this process
        forward(c, dir, chunk.subarray(0, left), () => reset(c));
        setTimeout(() => reset(c), 200).unref();
      } else {
        reset(c);
      }
      return;
    }
    // stall
    const left = (m.afterBytes ?? 0) - counted(c, "both");
    if (chunk.length <= left) {
      forward(c, dir, chunk);
      return;
    }
    if (left > 0) forward(c, dir, chunk.subarray(0, left));
    c.held[dir].push(left > 0 ? chunk.subarray(left) : chunk);
    socketsFor(c, dir).from.pause();
  };

  const server = net.createServer((client) => {
    counters.connections++;
    client.on("error", () => {});
    if (mode.kind === "refuse") {
      counters.refused++;
      client.resetAndDestroy();
      return;
    }
    client.pause();
    const upstream = net.connect({ host: target.host, port: target.port });
    upstream.on("error", () => {});
    upstream.pause();
    const c: Connection = {
      client,
      upstream,
      sent: { up: 0, down: 0 },
      baseline: { up: 0, down: 0 },
      held: { up: [], down: [] },
      cutting: false,
      dead: false,
    };
    open.add(c);
    upstream.once("connect", () => {
      if (c.dead) return;
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      client.resume();
      upstream.resume();
    });
    client.on("data", (chunk: Buffer) => onData(c, "up", chunk));
    upstream.on("data", (chunk: Buffer) => onData(c, "down", chunk));
    // half-close passes through; a full close or error on one side ends the other
    client.on("end", () => {
      if (!c.dead && c.held.up.length === 0) upstream.end();
    });
    upstream.on("end", () => {
      if (!c.dead && c.held.down.length === 0) client.end();
    });
    const onClose = () => {
      if (c.dead) return;
      c.dead = true;
      open.delete(c);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", onClose);
    upstream.on("close", onClose);
  });
  server.on("error", () => {});

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: opts.port ?? 0 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("proxy: no address");

  const setMode = (next: FaultMode) => {
    mode = next;
    for (const c of [...open]) {
      c.baseline = { ...c.sent };
      // release what a stall held, through the new mode
      for (const dir of ["up", "down"] as const) {
        const held = c.held[dir];
        c.held[dir] = [];
        for (const chunk of held) onData(c, dir, chunk);
        if (!c.dead && !c.cutting && c.held[dir].length === 0) socketsFor(c, dir).from.resume();
      }
    }
  };

  const stats = (): FaultProxyStats => ({ ...counters, open: open.size });

  return {
    host: "127.0.0.1",
    port: address.port,
    target: { ...target },
    get mode() {
      return mode;
    },
    get connections() {
      return counters.connections;
    },
    get cuts() {
      return counters.cuts;
    },
    get refused() {
      return counters.refused;
    },
    get bytesUp() {
      return counters.bytesUp;
    },
    get bytesDown() {
      return counters.bytesDown;
    },
    get open() {
      return open.size;
    },
    setMode,
    stats,
    dropConnections: () => {
      for (const c of [...open]) reset(c);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of [...open]) reset(c);
        server.close(() => resolve());
      }),
  };
}
