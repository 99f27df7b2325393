import type { SourcePart } from "../backup/sourceRun.js";
import { errorMessage, type Logger } from "../util/log.js";
import type { HookAnswer } from "./http.js";
import type { Fields } from "./httpRequest.js";
import { PausedError, StoppedError } from "./queue.js";
import {
  type ParsedTrigger,
  parseTriggerFields,
  parseTriggerPayload,
  printable,
  type TriggerOptions,
} from "./triggerPayload.js";
import type { Triggers } from "./triggers.js";

/**
 * Every external trigger (MQTT, the HTTP hook) comes in here: read, logged, then queued. A
 * picture or any other file that is not a clip asks for no run: one debug line, no warning.
 */
export class TriggerIntake {
  private readonly options: TriggerOptions;

  constructor(
    private readonly deps: {
      queue: Triggers;
      sources: readonly SourcePart[];
      logger: Logger;
      stopping(): boolean;
    },
  ) {
    this.options = {
      extensions: [...new Set(deps.sources.flatMap((p) => p.extensions))],
      localRoots: deps.sources.flatMap((p) =>
        p.source.localRoot ? [{ source: p.ref.name, root: p.source.localRoot }] : [],
      ),
    };
  }

  fromMqtt(topic: string, payload: Buffer): void {
    if (this.deps.stopping()) return;
    const parsed = parseTriggerPayload(payload, this.options);
    this.accept(parsed, "MQTT trigger", { topic: printable(topic) });
  }

  /** A hook call: junk is refused (the caller sees why); the rest is a trigger like MQTT's. */
  fromHook(fields: Readonly<Fields>): HookAnswer {
    const { queue, logger } = this.deps;
    const parsed = parseTriggerFields(fields, this.options, "http");
    if (parsed.problems.length > 0) {
      logger.info({ problems: parsed.problems, file: parsed.file }, "HTTP trigger refused");
      return { status: 400, body: { error: parsed.problems.join("; ") } };
    }
    const accepted = !this.deps.stopping() && this.accept(parsed, "HTTP trigger", {});
    return {
      status: 202,
      body: {
        queued: accepted && !queue.paused,
        ...(parsed.ignored ? { ignored: parsed.ignored } : {}),
        ...(parsed.request.clipPaths ? { clips: parsed.request.clipPaths } : {}),
        ...(parsed.request.source ? { source: parsed.request.source } : {}),
        ...(queue.paused ? { paused: true } : {}),
      },
    };
  }

  private accept(parsed: ParsedTrigger, what: string, context: Record<string, unknown>): boolean {
    const { logger } = this.deps;
    const fields = {
      ...context,
      camera: parsed.camera,
      file: parsed.file,
      event: parsed.event,
      source: parsed.source,
      clips: parsed.request.clipPaths,
    };
    if (parsed.ignored) {
      logger.debug({ ...fields, reason: parsed.ignored }, `${what}: not a clip, no run`);
      return false;
    }
    if (parsed.problems.length > 0) {
      logger.warn(
        { ...fields, problems: parsed.problems },
        "odd trigger payload: ignored the odd part",
      );
    } else {
      logger.info(fields, what);
    }
    this.deps.queue.request(parsed.request).catch((err: unknown) => {
      if (!(err instanceof PausedError || err instanceof StoppedError)) {
        logger.debug({ err: errorMessage(err) }, "triggered run failed");
      }
    });
    return true;
  }
}
