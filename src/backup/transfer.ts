import { remotePathOf } from "../clips/clipId.js";
import type { AgeVault } from "../crypto/ageVault.js";
import type { ClipRecord, Manifest } from "../manifest/manifest.js";
import type { Source } from "../storage/types.js";
import type { EventBus } from "../util/events.js";
import type { SourceClip } from "./scan.js";

export interface TransferDeps {
  source: Source;
  vault: AgeVault;
  manifest: Manifest;
  events: EventBus;
  now: () => number;
}

/**
 * One clip, end to end, streaming: read from the camera, encrypt into the vault (a temporary
 * name, renamed once complete), and only then record it. `touch` feeds the stall watchdog;
 * `signal` (the watchdog's) stops it, dropping the temporary upload.
 */
export async function transferClip(
  clip: SourceClip,
  runId: string,
  touch: () => void,
  signal: AbortSignal,
  deps: TransferDeps,
): Promise<ClipRecord> {
  const { events } = deps;
  signal.throwIfAborted();
  const input = await deps.source.read(clip.path);
  const remotePath = remotePathOf(clip.id);
  const sealed = await deps.vault.put(remotePath, input, {
    plainSize: clip.size,
    onPlainBytes: (bytes) => {
      touch();
      events.emit("clipProgress", { runId, id: clip.id, bytes });
    },
    onCipherChunk: touch,
    signal,
  });
  // Given up on meanwhile: the file is complete, but this attempt already counts as failed.
  signal.throwIfAborted();
  const record: ClipRecord = {
    id: clip.id,
    source: clip.source,
    camera: clip.camera,
    date: clip.date,
    name: clip.name,
    size: clip.size,
    mtimeMs: clip.mtimeMs,
    sha256: sealed.sha256,
    remotePath,
    remoteSize: sealed.remoteSize,
    uploadedAt: new Date(deps.now()).toISOString(),
    format: "age",
  };
  await deps.manifest.record(record);
  return record;
}
