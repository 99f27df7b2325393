/**
 * Free TCP ports on 127.0.0.1 for test servers.
 *
 * There is an unavoidable window between "the kernel told us this port is free" and "the
 * server bound it"; the servers are started right away and `waitForPort` + the child's exit
 * status catch the (rare) collision.
 */
import net from "node:net";

/** Binds 127.0.0.1:port (0 = any) and closes again; resolves with the port, or null when taken. */
function tryBind(port: number, host = "127.0.0.1"): Promise<number | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once("error", () => resolve(null));
    server.listen({ port, host, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : null;
      server.close(() => resolve(bound));
    });
  });
}

/** A TCP port that is free on 127.0.0.1 right now (the kernel picks it: listen on :0, close). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await tryBind(0);
    if (port) return port;
  }
  throw new Error("freePort: could not bind any port on 127.0.0.1");
}

/**
 * `count` consecutive ports that are all free on 127.0.0.1 right now; resolves with the first.
 * Picked at random below the kernel's ephemeral range (32768+), so they do not collide with
 * the ports `freePort` hands out or with outgoing connections.
 */
export async function freePortRange(count: number, min = 12000, max = 32000): Promise<number> {
  if (count < 1 || count > max - min) throw new Error(`freePortRange: bad count ${count}`);
  for (let attempt = 0; attempt < 200; attempt++) {
    const first = min + Math.floor(Math.random() * (max - min - count));
    let ok = true;
    for (let p = first; p < first + count; p++) {
      if ((await tryBind(p)) === null) {
        ok = false;
        break;
      }
    }
    if (ok) return first;
  }
  throw new Error(`freePortRange: no ${count} consecutive free ports in ${min}-${max}`);
}
