/**
 * The worker side of the "ssh2 in a worker thread" experiment (transport.bench.ts): this thread
 * owns the ssh2 connection (the ssh2 SFTP vault as the default transport builds it) and uploads
 * what the main thread sends it as transferred ArrayBuffers, one credit back per chunk consumed.
 * Several uploads may run at once (a sync runs two), told apart by `id`.
 */
import { Readable } from "node:stream";
import { parentPort, workerData } from "node:worker_threads";
import { createSftpVault, type SftpVaultOptions } from "../../src/storage/vault/sftp/sftpVault.js";

export type ToWorker =
  | { type: "put"; id: number; path: string; size: number }
  | { type: "chunk"; id: number; buffer: ArrayBuffer }
  | { type: "end"; id: number }
  | { type: "close" };

export type FromWorker =
  | { type: "credit"; id: number }
  | { type: "done"; id: number; size: number }
  | { type: "failed"; id: number; error: string }
  | { type: "closed" };

const port = parentPort;
if (!port) throw new Error("ssh2WorkerThread runs as a worker");
const options = workerData as SftpVaultOptions;
// A Buffer arrives as a plain Uint8Array (structured clone); ssh2 wants a Buffer.
const store = createSftpVault({
  ...options,
  privateKey: options.privateKey ? Buffer.from(options.privateKey) : undefined,
});
const post = (m: FromWorker) => port.postMessage(m);
const uploads = new Map<number, { stream: Readable; owed: number }>();

port.on("message", (m: ToWorker) => {
  if (m.type === "put") {
    const up = {
      owed: 0,
      stream: new Readable({
        highWaterMark: 256 * 1024,
        read() {
          for (; up.owed > 0; up.owed--) post({ type: "credit", id: m.id });
        },
      }),
    };
    uploads.set(m.id, up);
    store
      .put(m.path, up.stream, { expectedSize: m.size })
      .then(
        (r) => post({ type: "done", id: m.id, size: r.size }),
        (err: unknown) => post({ type: "failed", id: m.id, error: String(err) }),
      )
      .finally(() => uploads.delete(m.id));
  } else if (m.type === "chunk") {
    const up = uploads.get(m.id);
    // A view of the transferred memory: no copy on this side either.
    if (up?.stream.push(Buffer.from(m.buffer))) post({ type: "credit", id: m.id });
    else if (up) up.owed++;
  } else if (m.type === "end") {
    uploads.get(m.id)?.stream.push(null);
  } else if (m.type === "close") {
    void store.close().then(() => post({ type: "closed" }));
  }
});
