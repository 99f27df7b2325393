import type { z } from "zod";

/**
 * Reading a zod schema's structure (zod 4 keeps it in `_zod.def`): which keys an object has,
 * what a list holds, which option of a `type`-discriminated union a value picks. The strict-key
 * check and the environment variables both walk the config by these.
 */

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  values?: unknown[];
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** The schema under defaults, optionals and pipes. */
export function unwrap(schema: z.ZodType): Def {
  let d = defOf(schema);
  for (;;) {
    if (d.innerType) d = defOf(d.innerType);
    else if (d.type === "pipe" && d.in && d.out) {
      d = defOf(defOf(d.out).type === "transform" ? d.in : d.out);
    } else return d;
  }
}

/** The keys of an object schema, or undefined when it is not one. */
export function shapeOf(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  const d = unwrap(schema);
  return d.type === "object" ? d.shape : undefined;
}

/** The element schema of a list, or undefined when it is not one. */
export function elementOf(schema: z.ZodType): z.ZodType | undefined {
  const d = unwrap(schema);
  return d.type === "array" ? d.element : undefined;
}

/** The options of a discriminated union, with the discriminator's value of each. */
export function unionOptions(
  schema: z.ZodType,
): { discriminator: string; options: Array<{ value: unknown; schema: z.ZodType }> } | undefined {
  const d = unwrap(schema);
  if (d.type !== "union" || !d.discriminator || !d.options) return undefined;
  const key = d.discriminator;
  return {
    discriminator: key,
    options: d.options.map((o) => ({
      value: unwrap(shapeOf(o)?.[key] as z.ZodType).values?.[0],
      schema: o,
    })),
  };
}

/** What kind of value a leaf holds (to read it from an environment variable). */
export type LeafKind = "string" | "number" | "boolean" | "array";

export function leafKind(schema: z.ZodType): LeafKind {
  const t = unwrap(schema).type;
  return t === "number" || t === "boolean" || t === "array" ? t : "string";
}
