/**
 * The main side of the "ssh2 in a worker thread" experiment: uploads through a worker that owns
 * the SSH connection, handing it each chunk's memory (a transfer, not a copy), at most
 * `CREDITS` chunks ahead of what the worker consumed, per upload.
 */
import { Worker } from "node:worker_threads";
import type { SftpVaultOptions } from "../../src/storage/vault/sftp/sftpVault.js";
import type { FromWorker, ToWorker } from "./ssh2WorkerThread.js";

const CREDITS = 16;

export interface WorkerVault {
  put(path: string, chunks: Iterable<Buffer>, size: number): Promise<number>;
  close(): Promise<void>;
}

export function startWorkerVault(options: SftpVaultOptions): WorkerVault {
  // The bench runs from TypeScript (tsx): the worker registers tsx before loading its module.
  const thread = new URL("./ssh2WorkerThread.ts", import.meta.url).href;
  const boot = `import("tsx/esm/api").then((t) => { t.register(); return import(${JSON.stringify(thread)}); });`;
  const worker = new Worker(boot, { eval: true, workerData: options });
  const send = (m: ToWorker, transfer?: ArrayBuffer[]) => worker.postMessage(m, transfer);
  const puts = new Map<number, (m: FromWorker) => void>();
  let onClosed: (() => void) | undefined;
  let nextId = 1;
  const failAll = (error: string) => {
    for (const [id, on] of puts) on({ type: "failed", id, error });
  };
  worker.on("message", (m: FromWorker) => {
    if (m.type === "closed") onClosed?.();
    else puts.get(m.id)?.(m);
  });
  // A worker that dies fails what waits on it.
  worker.on("error", (err) => failAll(String(err)));
  worker.on("exit", (code) => failAll(`worker exited (${code})`));

  return {
    put(path, chunks, size) {
      const id = nextId++;
      return new Promise<number>((resolve, reject) => {
        const it = chunks[Symbol.iterator]();
        let credits = CREDITS;
        let ended = false;
        const pump = () => {
          while (credits > 0 && !ended) {
            const next = it.next();
            if (next.done) {
              ended = true;
              send({ type: "end", id });
              return;
            }
            credits--;
            const b = next.value;
            // Chunks own their memory (fresh buffers): it moves to the worker as it is.
            const own =
              b.byteOffset === 0 && b.byteLength === b.buffer.byteLength
                ? (b.buffer as ArrayBuffer)
                : new Uint8Array(b).buffer;
            send({ type: "chunk", id, buffer: own }, [own]);
          }
        };
        puts.set(id, (m) => {
          if (m.type === "credit") {
            credits++;
            pump();
          } else if (m.type === "done") resolve(m.size);
          else if (m.type === "failed") reject(new Error(m.error));
        });
        send({ type: "put", id, path, size });
        pump();
      }).finally(() => puts.delete(id));
    },
    close() {
      return new Promise((resolve) => {
        const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 5000);
        onClosed = () => {
          clearTimeout(timer);
          void worker.terminate().then(() => resolve());
        };
        send({ type: "close" });
      });
    },
  };
}
