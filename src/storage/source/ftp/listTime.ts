/** LIST times of Unix-style FTP servers (vsftpd, busybox), which give no year or zone. */

const MONTHS: Record<string, number> = {
  jan: 0,
  feb: 1,
  mar: 2,
  apr: 3,
  may: 4,
  jun: 5,
  jul: 6,
  aug: 7,
  sep: 8,
  oct: 9,
  nov: 10,
  dec: 11,
};

/** A LIST time read as if it were UTC; `hasTime` is false for the "May 01 2023" (day only) form. */
export interface RawListTime {
  ms: number;
  hasTime: boolean;
}

/** Parses basic-ftp's `rawModifiedAt` of a Unix-style LIST line, read as UTC. Exported for tests. */
export function parseListTime(raw: string, nowMs: number): RawListTime | undefined {
  const s = raw.trim().replace(/\s+/g, " ");
  let m = /^(\d{4})[-/](\d{1,2})[-/](\d{1,2}) (\d{1,2}):(\d{2})$/.exec(s);
  if (m) {
    return {
      ms: Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5])),
      hasTime: true,
    };
  }
  let month: number | undefined;
  let day: number;
  let rest: string;
  m = /^([A-Za-z]{3}) (\d{1,2}) (\S+)$/.exec(s);
  if (m) {
    month = MONTHS[(m[1] ?? "").toLowerCase()];
    day = Number(m[2]);
    rest = m[3] ?? "";
  } else {
    m = /^(\d{1,2}) ([A-Za-z]{3}) (\S+)$/.exec(s);
    if (!m) return undefined;
    month = MONTHS[(m[2] ?? "").toLowerCase()];
    day = Number(m[1]);
    rest = m[3] ?? "";
  }
  if (month === undefined) return undefined;
  const year = /^(\d{4})$/.exec(rest);
  if (year) return { ms: Date.UTC(Number(year[1]), month, day), hasTime: false };
  const time = /^(\d{1,2}):(\d{2})$/.exec(rest);
  if (!time) return undefined;
  // "MMM dd HH:mm" is how ls and vsftpd show the last six months (older or future times get the
  // year): take the latest year that does not put it in the future (two days' slack for
  // timezones and clock skew).
  let y = new Date(nowMs).getUTCFullYear();
  const at = (year: number) => Date.UTC(year, month, day, Number(time[1]), Number(time[2]));
  if (at(y) > nowMs + 2 * 86_400_000) y--;
  return { ms: at(y), hasTime: true };
}
