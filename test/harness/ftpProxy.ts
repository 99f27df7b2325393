/**
 * A fault proxy for FTP, data connections included.
 *
 * test/harness/proxy.ts handles protocols on one TCP connection; FTP opens a data connection per
 * transfer to a passive port the server names in its PASV/EPSV reply. This proxy rewrites those
 * replies on the control connection so the client dials one of our per-port fault proxies
 * instead, which forward to the server's real passive port. Control and data faults are then
 * set separately:
 *
 *   client ──control──▶ controlProxy (FaultProxy) ──▶ rewriter ──▶ vsftpd:port
 *   client ───data────▶ dataProxies[p] (FaultProxy) ─────────────▶ vsftpd:p   (p in pasvPorts)
 *
 * Plain FTP only: with FTPS the replies are encrypted and cannot be rewritten.
 */
import net from "node:net";
import { type FaultMode, type FaultProxy, startFaultProxy } from "./proxy.js";

export interface FtpFaultProxy {
  host: "127.0.0.1";
  /** Point the FTP client here. */
  port: number;
  /** Faults on the control connection. */
  setControlMode(mode: FaultMode): void;
  /** Faults on every data connection (listings and transfers alike). */
  setDataMode(mode: FaultMode): void;
  /** Connections cut so far (control + data). */
  cuts(): number;
  /** Data connections made through the proxy so far. */
  dataConnections(): number;
  /** Bytes forwarded on data connections so far (both directions). */
  dataBytes(): number;
  close(): Promise<void>;
}

/** Rewrites `227 ... (h1,h2,h3,h4,p1,p2)` and `229 ... (|||port|)` to point at our data proxies. */
function rewriteLine(line: string, portFor: (serverPort: number) => number | undefined): string {
  const pasv = /^(227 .*?\()(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)(\).*)$/s.exec(line);
  if (pasv) {
    const mapped = portFor(Number(pasv[6]) * 256 + Number(pasv[7]));
    if (mapped === undefined) return line;
    return `${pasv[1]}127,0,0,1,${mapped >> 8},${mapped & 255}${pasv[8]}`;
  }
  const epsv = /^(229 .*?\(\|\|\|)(\d+)(\|\).*)$/s.exec(line);
  if (epsv) {
    const mapped = portFor(Number(epsv[2]));
    if (mapped === undefined) return line;
    return `${epsv[1]}${mapped}${epsv[3]}`;
  }
  return line;
}

/** Starts the proxy in front of an FTP server whose passive ports are `pasvPorts` (inclusive). */
export async function startFtpFaultProxy(server: {
  host: string;
  port: number;
  pasvPorts: [number, number];
}): Promise<FtpFaultProxy> {
  const data = new Map<number, FaultProxy>();
  for (let p = server.pasvPorts[0]; p <= server.pasvPorts[1]; p++) {
    data.set(p, await startFaultProxy({ host: server.host, port: p }));
  }
  const portFor = (p: number) => data.get(p)?.port;

  // The rewriter: forwards client bytes as they are, server bytes line by line (rewritten).
  const sockets = new Set<net.Socket>();
  const rewriter = net.createServer((client) => {
    const upstream = net.connect({ host: server.host, port: server.port });
    sockets.add(client);
    sockets.add(upstream);
    let pending = "";
    const end = () => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      pending += chunk.toString("latin1");
      let nl = pending.indexOf("\n");
      while (nl >= 0) {
        client.write(Buffer.from(rewriteLine(pending.slice(0, nl + 1), portFor), "latin1"));
        pending = pending.slice(nl + 1);
        nl = pending.indexOf("\n");
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    rewriter.once("error", reject);
    rewriter.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const address = rewriter.address();
  if (!address || typeof address === "string") throw new Error("ftp proxy: no address");
  const control = await startFaultProxy({ host: "127.0.0.1", port: address.port });

  return {
    host: "127.0.0.1",
    port: control.port,
    setControlMode: (mode) => control.setMode(mode),
    setDataMode: (mode) => {
      for (const d of data.values()) d.setMode(mode);
    },
    cuts: () => control.stats().cuts + [...data.values()].reduce((n, d) => n + d.stats().cuts, 0),
    dataConnections: () => [...data.values()].reduce((n, d) => n + d.stats().connections, 0),
    dataBytes: () => [...data.values()].reduce((n, d) => n + d.bytesUp + d.bytesDown, 0),
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.allSettled([
        control.close(),
        ...[...data.values()].map((d) => d.close()),
        new Promise<void>((resolve) => rewriter.close(() => resolve())),
      ]);
    },
  };
}
