/**
 * The SSH transport alone, the two ways issue 16 asked to measure before choosing, uploading the
 * same 10 x 20 MiB (two at a time, as a sync does) to the same sshd:
 *
 * - ssh2 on the main thread (the default transport, as it is);
 * - ssh2 in a worker thread that owns the SSH connection, the main thread handing it each
 *   chunk's memory (transferred ArrayBuffers, no copy): bench/lib/ssh2Worker.ts;
 * - OpenSSH's `ssh` as the transport (`destination.transport: openssh`);
 * - OpenSSH's `sftp` putting the same bytes from a file: the reference.
 *
 * No FTP, no age: what differs is only the transport. CPU is the whole process's (every thread)
 * plus its children's (`ssh`), per MB. The in-process ways get each 64 KiB in a fresh buffer (as
 * age's output is; a transfer to a worker needs that too): "no transport" makes and drops the
 * same chunks, and its CPU is taken off to give the transport's own.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { VaultStore } from "../src/storage/types.js";
import { createOpensshVault } from "../src/storage/vault/sftp/openssh/opensshVault.js";
import { createSftpVault, type SftpVaultOptions } from "../src/storage/vault/sftp/sftpVault.js";
import { tempDir } from "../test/harness/files.js";
import { pseudoRandomBytes } from "../test/harness/ftp.js";
import { startSftpServer } from "../test/harness/sshd.js";
import { onCleanup } from "./lib/cleanup.js";
import { childrenCpuMs, MiB, mbps, median, round } from "./lib/measure.js";
import { opensshSftp } from "./lib/references.js";
import { startWorkerVault } from "./lib/ssh2Worker.js";
import type { BenchRow } from "./lib/types.js";

const COUNT = 10;
const SIZE = 20 * MiB;
const ROUNDS = 3;
const CHUNK = 64 * 1024;
const MB = (COUNT * SIZE) / 1e6;

interface Sample {
  mbps: number;
  cpuPerMb: number;
}

/** The clip's bytes in fresh 64 KiB buffers, as the age layer hands them on. */
function* freshChunks(data: Buffer): Generator<Buffer> {
  for (let at = 0; at < data.length; at += CHUNK) {
    const b = Buffer.allocUnsafeSlow(Math.min(CHUNK, data.length - at));
    data.copy(b, 0, at, at + b.length);
    yield b;
  }
}

/** Runs `work` (which closes what it opened); CPU of this process and of reaped children. */
async function measure(work: () => Promise<void>): Promise<Sample> {
  const cpu0 = process.cpuUsage();
  const children0 = childrenCpuMs();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  // Children (ssh, sftp) are counted once reaped.
  await new Promise((r) => setTimeout(r, 200));
  const cpu = process.cpuUsage(cpu0);
  const own = (cpu.user + cpu.system) / 1000;
  return { mbps: mbps(COUNT * SIZE, ms), cpuPerMb: (own + childrenCpuMs() - children0) / MB };
}

/** COUNT puts, two at a time. */
async function putAll(put: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < COUNT; i = next++) await put(i);
  };
  await Promise.all([lane(), lane()]);
}

export async function run(): Promise<BenchRow[]> {
  const [sshd, work] = await Promise.all([startSftpServer(), tempDir("mevault-bench-t-")]);
  const close = onCleanup(() =>
    Promise.allSettled([sshd.close(), rm(work, { recursive: true, force: true })]),
  );
  try {
    const data = pseudoRandomBytes(SIZE, "transport-bench");
    const localFile = join(work, "clip.bin");
    await writeFile(localFile, data);
    const ssh2Options = (dir: string): SftpVaultOptions => ({
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      hostKey: sshd.hostKeyFingerprint,
      knownHostsFile: join(work, "known_hosts"),
      root: dir,
    });
    const privateKey = await readFile(sshd.privateKeyPath);
    const viaStore = async (store: VaultStore) => {
      await putAll((i) =>
        store.put(`c${i}.age`, Readable.from(freshChunks(data)), { expectedSize: SIZE }),
      );
      await store.close();
    };

    const ways: Record<string, (dir: string) => Promise<void>> = {
      // The same chunks made and dropped: what every in-process way spends besides its transport.
      "no transport": () =>
        putAll(() =>
          pipeline(
            Readable.from(freshChunks(data)),
            new Writable({ highWaterMark: 256 * 1024, write: (_c, _e, cb) => cb() }),
          ),
        ),
      sftp: async (dir) => {
        await mkdir(dir, { recursive: true });
        const puts = Array.from({ length: COUNT }, (_, i) => `put ${localFile} ${dir}/c${i}.age`);
        await opensshSftp(sshd, puts);
      },
      "ssh2 main thread": (dir) => viaStore(createSftpVault({ ...ssh2Options(dir), privateKey })),
      "ssh2 worker thread": async (dir) => {
        const vault = startWorkerVault({ ...ssh2Options(dir), privateKey });
        try {
          await putAll((i) => vault.put(`c${i}.age`, freshChunks(data), SIZE));
        } finally {
          await vault.close();
        }
      },
      openssh: (dir) =>
        viaStore(
          createOpensshVault({
            host: sshd.host,
            port: sshd.port,
            username: sshd.username,
            privateKeyFile: sshd.privateKeyPath,
            pinned: sshd.hostKeyFingerprint,
            knownHostsFile: join(work, "known_hosts"),
            opensshKnownHostsFile: join(work, "known_hosts.openssh"),
            root: dir,
            timeoutMs: 30_000,
          }),
        ),
    };
    const names = Object.keys(ways);
    const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + r) % names.length] as string;
        const dir = join(sshd.root, `${name.replace(/\s+/g, "-")}-${r}`);
        samples[name]?.push(await measure(() => (ways[name] as (d: string) => Promise<void>)(dir)));
        await rm(dir, { recursive: true, force: true });
      }
    }
    const med = (name: string, k: keyof Sample) => median((samples[name] ?? []).map((x) => x[k]));
    const sftp = { mbps: med("sftp", "mbps"), cpu: med("sftp", "cpuPerMb") };
    const rows: BenchRow[] = [];
    const none = med("no transport", "cpuPerMb");
    for (const name of names.filter((n) => n !== "sftp" && n !== "no transport")) {
      const all = samples[name] ?? [];
      const transport = med(name, "cpuPerMb") - none;
      rows.push({
        name: `SSH transport alone, ${COUNT} x 20 MiB, 2 at a time: ${name}`,
        value: med(name, "mbps"),
        unit: "MB/s",
        reference: { name: "OpenSSH sftp put of the same bytes", value: sftp.mbps, unit: "MB/s" },
        note: `median of ${ROUNDS}: ${all.map((x) => round(x.mbps)).join(", ")} MB/s; CPU ms per MB (process, all threads, + ssh): ${round(med(name, "cpuPerMb"))}, of which the transport ${round(transport)} (the rest, ${round(none)}, is making the chunks); sftp+ssh ${round(sftp.cpu)}: the transport ${round(transport / sftp.cpu)}x sftp+ssh`,
      });
    }
    return rows;
  } finally {
    await close();
  }
}
