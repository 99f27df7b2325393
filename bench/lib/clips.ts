/**
 * Clip files of any size on the camera's FTP tree, streamed to disk (a 1 GiB clip is never in
 * memory): finished MP4s around deterministic pseudo-random bytes (the harness's generator,
 * seeded by the path), owned by the FTP user, an hour old.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chown, mkdir, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { clipChunks, ensureFtpAccount, type FtpServer } from "../../test/harness/ftp.js";

export interface ClipFile {
  /** Path relative to the media root: the clip id. */
  relPath: string;
  localPath: string;
  size: number;
  sha256: string;
}

export async function writeClipFile(
  ftp: FtpServer,
  relPath: string,
  size: number,
): Promise<ClipFile> {
  const { uid, gid } = await ensureFtpAccount(ftp.user, ftp.password);
  const parts = relPath.split("/");
  let dir = ftp.localRoot;
  for (const part of parts.slice(0, -1)) {
    dir = join(dir, part);
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) {
      await mkdir(dir, { mode: 0o755 });
      await chown(dir, uid, gid);
    }
  }
  const localPath = join(ftp.localRoot, ...parts);
  const hash = createHash("sha256");
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  await pipeline(
    Readable.from(clipChunks(size, relPath)),
    tee,
    createWriteStream(localPath, { mode: 0o644 }),
  );
  await chown(localPath, uid, gid);
  const settled = new Date(Date.now() - 3600_000);
  await utimes(localPath, settled, settled);
  return { relPath, localPath, size, sha256: hash.digest("hex") };
}

/** `count` clips of `size` bytes in one camera's day folder, named like motionEye's movies. */
export async function writeClipFiles(
  ftp: FtpServer,
  opts: { camera: string; date: string; count: number; size: number },
): Promise<ClipFile[]> {
  const clips: ClipFile[] = [];
  for (let i = 0; i < opts.count; i++) {
    const name = `12-${String(Math.floor(i / 60)).padStart(2, "0")}-${String(i % 60).padStart(2, "0")}.mp4`;
    clips.push(await writeClipFile(ftp, `${opts.camera}/${opts.date}/${name}`, opts.size));
  }
  return clips;
}
