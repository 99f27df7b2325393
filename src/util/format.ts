/** Human-readable sizes and times for the CLI, the bot and logs. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** `2024-05-01T12:00:00Z` without milliseconds. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The time of day of a motionEye clip name (`12-00-00.mp4` -> `12:00:00`), else its name. */
export function clipTime(name: string): string {
  const m = /^(\d{2})-(\d{2})-(\d{2})/.exec(name);
  return m ? `${m[1]}:${m[2]}:${m[3]}` : name;
}
