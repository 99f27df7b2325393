/**
 * The upload cap (`sync.bandwidthLimit`) as a layer over any vault store: what is written goes
 * through the shared token bucket, so every upload of the process together stays under the cap,
 * whatever the backend. Reads (restore, verify) are not capped.
 */
import { pipeline, type Readable, Transform, type TransformCallback } from "node:stream";
import type { BandwidthLimit } from "../util/bandwidth.js";
import type { VaultStore } from "./types.js";

/** Passes bytes on no faster than `limit` allows, in pieces no bigger than its bucket. */
export function throttle(limit: BandwidthLimit): Transform {
  return new Transform({
    highWaterMark: 64 * 1024,
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      if (limit.uncapped()) return callback(null, chunk);
      void (async () => {
        for (let at = 0; at < chunk.length; ) {
          const piece = chunk.subarray(at, at + limit.pieceSize());
          await limit.take(piece.length);
          if (this.destroyed) return;
          this.push(piece);
          at += piece.length;
        }
        callback();
      })();
    },
  });
}

/** `store` with its uploads capped by `limit`. */
export function withUploadLimit(store: VaultStore, limit: BandwidthLimit): VaultStore {
  // Optional abilities pass through untouched (S3's sweep of stale multipart uploads).
  const sweepStale = store.sweepStale?.bind(store);
  return {
    ...(sweepStale ? { sweepStale } : {}),
    description: store.description,
    list: (dir) => store.list(dir),
    stat: (path) => store.stat(path),
    read: (path) => store.read(path),
    ...(store.readRange ? { readRange: store.readRange.bind(store) } : {}),
    remove: (path) => store.remove(path),
    close: () => store.close(),
    put(path, data: Readable, opts) {
      // Either side's failure destroys both: the store sees the source's error as its own.
      const capped = pipeline(data, throttle(limit), () => {});
      return store.put(path, capped, opts);
    },
  };
}
