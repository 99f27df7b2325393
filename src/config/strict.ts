import type { z } from "zod";
import { elementOf, shapeOf, unionOptions } from "./zodShape.js";

/**
 * Every object in the config is strict: a key the schema does not know is an error naming its
 * full path, with the nearest known key when one is close (`source.stableSecond: unknown key
 * (did you mean stableSeconds?)`), instead of being silently ignored.
 */

type Tree = Record<string, unknown>;

export function isTree(v: unknown): v is Tree {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `sources[1].name` from ["sources", 1, "name"]. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out || "(config)";
}

/** One problem per unknown key anywhere in `value`, walking it alongside `schema`. */
export function unknownKeyProblems(
  value: unknown,
  schema: z.ZodType,
  path: PropertyKey[] = [],
): string[] {
  const union = unionOptions(schema);
  if (union) {
    if (!isTree(value)) return [];
    const picked = union.options.find((o) => o.value === value[union.discriminator]);
    // An unknown type is reported by the schema itself; its keys cannot be judged.
    return picked ? unknownKeyProblems(value, picked.schema, path) : [];
  }
  const element = elementOf(schema);
  if (element) {
    return Array.isArray(value)
      ? value.flatMap((v, i) => unknownKeyProblems(v, element, [...path, i]))
      : [];
  }
  const shape = shapeOf(schema);
  if (!shape || !isTree(value)) return [];
  const known = Object.keys(shape);
  const problems: string[] = [];
  for (const [key, v] of Object.entries(value)) {
    const child = shape[key];
    if (child) {
      problems.push(...unknownKeyProblems(v, child, [...path, key]));
      continue;
    }
    const near = nearestKey(key, known);
    problems.push(
      `${formatPath([...path, key])}: unknown key${near ? ` (did you mean ${near}?)` : ""}`,
    );
  }
  return problems;
}

/** The known key closest to a misspelt one, when it is close enough to be what was meant. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  const plain = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  let best: { key: string; distance: number } | undefined;
  for (const k of known) {
    const d = plain(k) === plain(key) ? 0 : editDistance(key, k);
    if (!best || d < best.distance) best = { key: k, distance: d };
  }
  if (!best) return undefined;
  const allowed = Math.max(1, Math.floor(Math.min(key.length, best.key.length) / 3));
  return best.distance <= allowed ? best.key : undefined;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, transpositions. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, at(i - 2, j - 2) + 1);
      }
      const row = d[i];
      if (row) row[j] = v;
    }
  }
  return at(a.length, b.length);
}
