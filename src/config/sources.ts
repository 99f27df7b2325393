import { isTree } from "./strict.js";

/**
 * Rules across the entries of `sources:` (as written) (one line per problem): names are unique, and so are
 * prefixes; at most one entry keeps unprefixed ids (`prefix: ""`).
 */
export function checkSources(entries: readonly unknown[]): string[] {
  const problems: string[] = [];
  const names = new Map<string, number>();
  const prefixes = new Map<string, number>();
  entries.forEach((entry, i) => {
    // Entries whose name or prefix is not even text are reported by the schema.
    if (!isTree(entry) || typeof entry.name !== "string") return;
    const s = {
      name: entry.name,
      prefix: typeof entry.prefix === "string" ? entry.prefix : entry.name,
    };
    const first = names.get(s.name);
    if (first !== undefined) {
      problems.push(
        `sources[${i}].name: "${s.name}" is the name of sources[${first}] too; each source needs its own name`,
      );
    } else names.set(s.name, i);

    const owner = prefixes.get(s.prefix);
    if (owner === undefined) prefixes.set(s.prefix, i);
    else if (s.prefix === "") {
      problems.push(
        `sources[${i}].prefix: only one source may keep unprefixed clip ids (prefix: ""); sources[${owner}] does already`,
      );
    } else if (first === undefined) {
      problems.push(
        `sources[${i}].prefix: "${s.prefix}" is the prefix of sources[${owner}] too; their clip ids would collide`,
      );
    }
  });
  return problems;
}
