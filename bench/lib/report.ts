/** The benchmark table: one markdown table for the terminal and bench/results.md. */
import os from "node:os";
import { round } from "./measure.js";
import { type BenchRow, ratioOf } from "./types.js";

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function quantity(value: number, unit: string): string {
  return Number.isFinite(value) ? `${round(value)} ${unit}` : "not measured";
}

/** The table, then the notes (numbered like the rows they belong to). */
export function renderTable(rows: BenchRow[]): string {
  const lines = [
    "| # | figure | value | reference | ratio | target | met |",
    "|---|---|---|---|---|---|---|",
  ];
  const notes: string[] = [];
  rows.forEach((row, i) => {
    const ratio = ratioOf(row);
    const ref = row.reference
      ? `${quantity(row.reference.value, row.reference.unit)} (${row.reference.name})`
      : "";
    const met = row.met === undefined ? "" : row.met ? "yes" : "**no**";
    lines.push(
      `| ${i + 1} | ${cell(row.name)} | ${quantity(row.value, row.unit)} | ${cell(ref)} | ${ratio === undefined ? "" : `${round(ratio)}x`} | ${cell(row.target ?? "")} | ${met} |`,
    );
    if (row.note) notes.push(`${i + 1}. ${row.note}`);
  });
  return notes.length
    ? `${lines.join("\n")}\n\nNotes:\n\n${notes.join("\n")}\n`
    : `${lines.join("\n")}\n`;
}

export function machineDescription(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? "unknown CPU";
  const ram = (os.totalmem() / 1024 ** 3).toFixed(1);
  return `${cpus.length} cores (${model}), ${ram} GiB RAM, node ${process.version}, ${os.type()} ${os.release()}`;
}

/** The whole bench/results.md. */
export function renderResults(
  rows: BenchRow[],
  opts: { modules: string[]; seconds: number; loadBefore: number[]; loadAfter: number[] },
): string {
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  return [
    "# Benchmark results",
    "",
    "Written by `npm run bench` (bench/run.ts); every reference was measured in the same run, on",
    "loopback servers the benchmark started itself. Ratios are value / reference (reference / value",
    "for times and sizes), so higher is better.",
    "",
    `- date: ${new Date().toISOString().replace(/\.\d{3}Z$/, "Z")}`,
    `- machine: ${machineDescription()}`,
    `- load average (1, 5, 15 min): ${load(opts.loadBefore)} before, ${load(opts.loadAfter)} after (${os.cpus().length} cores: ${os.cpus().length}.0 keeps them all busy)`,
    `- benchmarks: ${opts.modules.join(", ")} (${Math.round(opts.seconds)} s)`,
    "",
    renderTable(rows),
  ].join("\n");
}
