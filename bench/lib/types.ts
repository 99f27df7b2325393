/**
 * One line of the benchmark table. Every figure is reported next to a reference measured in the
 * same run (these machines are noisy): `ratio` = value / reference, or reference / value for
 * "lower is better" figures, so that higher is always better.
 */
export interface BenchRow {
  /** What was measured, e.g. "sync throughput, 20 x 20 MiB, FTP -> age -> SFTP". */
  name: string;
  value: number;
  unit: string;
  /** The reference measured in the same run, e.g. OpenSSH sftp put of the same files. */
  reference?: { name: string; value: number; unit: string };
  /** Set for times and sizes: the ratio is then reference / value (higher is still better). */
  lowerIsBetter?: boolean;
  /** Target as text, e.g. ">= 0.8x sftp" or "<= 150 MB". */
  target?: string;
  met?: boolean;
  note?: string;
}

/** A benchmark module: `bench/<name>.bench.ts` exports `run`. bench/run.ts runs them all. */
export type BenchModule = { run(): Promise<BenchRow[]> };

/** value / reference, or reference / value when lower is better; undefined without a reference. */
export function ratioOf(row: BenchRow): number | undefined {
  const ref = row.reference;
  if (!ref || ref.value <= 0 || row.value <= 0 || ref.unit !== row.unit) return undefined;
  return row.lowerIsBetter ? ref.value / row.value : row.value / ref.value;
}
