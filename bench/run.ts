/**
 * `npm run bench [name...]`: runs every bench/<name>.bench.ts (or only the named ones), one after
 * the other, then prints one markdown table and writes it to bench/results.md.
 *
 * Benchmarks are not tests: they start their own loopback servers, compare each figure with a
 * reference measured in the same run, and report targets met or not, without failing.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { cleanupAll } from "./lib/cleanup.js";
import { renderResults, renderTable } from "./lib/report.js";
import type { BenchModule, BenchRow } from "./lib/types.js";

const here = dirname(fileURLToPath(import.meta.url));
const SUFFIX = ".bench.ts";

async function main(): Promise<void> {
  const available = readdirSync(here)
    .filter((f) => f.endsWith(SUFFIX))
    .map((f) => f.slice(0, -SUFFIX.length))
    .sort();
  const wanted = process.argv
    .slice(2)
    .map((a) => a.replace(/\.bench\.ts$/, "").replace(/^bench\//, ""));
  const unknown = wanted.filter((w) => !available.includes(w));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown benchmark(s): ${unknown.join(", ")}; available: ${available.join(", ")}\n`,
    );
    process.exitCode = 2;
    return;
  }
  const modules = wanted.length > 0 ? wanted : available;
  // The same real programs as the tests (vsftpd, sshd, sftp, rclone, mosquitto...), installed
  // when missing, as `npm test` does.
  try {
    execFileSync("bash", [join(here, "..", "scripts", "ensure-deps.sh")], { stdio: "inherit" });
  } catch {
    process.stderr.write("bench: the programs the benchmarks need are missing (see above)\n");
    process.exitCode = 1;
    return;
  }

  const rows: BenchRow[] = [];
  const started = performance.now();
  const loadBefore = os.loadavg();
  for (const name of modules) {
    const t0 = performance.now();
    process.stderr.write(`==> ${name}\n`);
    try {
      const mod = (await import(pathToFileURL(join(here, `${name}${SUFFIX}`)).href)) as BenchModule;
      rows.push(...(await mod.run()));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`${name} failed: ${message}\n`);
      rows.push({
        name: `${name}: benchmark failed`,
        value: Number.NaN,
        unit: "",
        note: message.split("\n")[0],
      });
    } finally {
      await cleanupAll();
    }
    process.stderr.write(`    ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`\n${renderTable(rows)}`);
  // Only a full run replaces results.md: its figures must all come from one run.
  const out = wanted.length > 0 ? "results.partial.md" : "results.md";
  writeFileSync(
    join(here, out),
    renderResults(rows, { modules, seconds, loadBefore, loadAfter: os.loadavg() }),
  );
  process.stderr.write(`\nwritten to bench/${out} (${seconds.toFixed(0)} s)\n`);
}

await main();
