import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { type Api, GrammyError, InputFile } from "grammy";
import type { Logger } from "../../util/log.js";
import { apiSignal } from "./common.js";
import type { VideoInfo } from "./video/probe.js";

/** Telegram plays these inline; anything else goes as a document. */
export const PLAYABLE = /\.(mp4|m4v|mov)$/i;

/**
 * Read size for uploads. Every chunk is a fresh buffer that V8 frees only at its next collection:
 * uploading 120 MiB with grammY alone raised a process's peak RSS by ~34 MiB of such garbage with
 * 64 KiB chunks, by ~16 MiB with 16 KiB (more small objects bring the young-generation
 * collections sooner), at ~200 MB/s still far above any link to Telegram.
 */
const UPLOAD_CHUNK = 16 * 1024;

/** A file for grammY to upload, read in small chunks and opened again on each attempt. */
export function uploadFile(path: string, filename: string): InputFile {
  return new InputFile(() => createReadStream(path, { highWaterMark: UPLOAD_CHUNK }), filename);
}

export interface OutgoingVideo {
  /** The file to upload (a path: opened again when a request is retried). */
  path: string;
  /** The name the chat shows. */
  filename: string;
  caption: string;
  /** From ffprobe: without it the phone learns duration and size only from the file. */
  info?: VideoInfo;
  /** A JPEG within Telegram's thumbnail limits. */
  thumbnail?: string;
}

/**
 * Sends a file as a video that plays inline (duration, width, height, supports_streaming and a
 * thumbnail when known), or as a document when it is no format phones play or sendVideo is
 * refused. A 413 (the file is over the Bot API's limit) is not retried as a document: it would
 * be refused the same way.
 */
export async function sendVideoFile(
  api: Api,
  chatId: number,
  video: OutgoingVideo,
  opts: { signal: AbortSignal; log: Logger; describe(err: unknown): string; limit: number },
): Promise<"video" | "document"> {
  const upload = () => uploadFile(video.path, video.filename);
  const signal = apiSignal(opts.signal);
  // The thumbnail rides in the same request: only when both fit under the limit.
  const size = (await stat(video.path)).size;
  const thumbSize = video.thumbnail ? (await stat(video.thumbnail)).size : 0;
  const thumbnail =
    video.thumbnail && size + thumbSize <= opts.limit ? new InputFile(video.thumbnail) : undefined;

  if (PLAYABLE.test(video.path)) {
    const { info } = video;
    try {
      await api.sendVideo(
        chatId,
        upload(),
        {
          caption: video.caption,
          supports_streaming: true,
          ...(info
            ? {
                duration: Math.max(1, Math.round(info.duration)),
                width: info.width,
                height: info.height,
              }
            : {}),
          ...(thumbnail ? { thumbnail } : {}),
        },
        signal,
      );
      return "video";
    } catch (err) {
      if (opts.signal.aborted || (err instanceof GrammyError && err.error_code === 413)) throw err;
      opts.log.warn(
        { err: opts.describe(err) },
        "telegram: sendVideo failed, sending as a document",
      );
    }
  }
  await api.sendDocument(
    chatId,
    upload(),
    { caption: video.caption, ...(thumbnail ? { thumbnail } : {}) },
    signal,
  );
  return "document";
}
