import type { Extension, ExtensionContext } from "./contract.js";
import { createHomeAssistantExtension } from "./homeassistant/index.js";
import { createTelegramExtension } from "./telegram/index.js";

/**
 * Every extension `serve` runs, one line each (as zigbee2mqtt's controller lists them). A factory
 * may return undefined when its feature is off (no token, no MQTT...).
 */
export function buildExtensions(ctx: ExtensionContext): Extension[] {
  const all: Array<Extension | undefined> = [
    createHomeAssistantExtension(ctx),
    createTelegramExtension(ctx),
    // createSomethingExtension(ctx),
  ];
  return all.filter((e): e is Extension => e !== undefined);
}
