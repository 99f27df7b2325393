import type { Command } from "commander";
import { EXIT_OK, withVault } from "../context.js";

/** Past this, a stop that hangs (a broker or server that never answers) ends the process anyway. */
const HARD_STOP_MS = 9300;

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description(
      "the daemon: sync on MQTT triggers (motioneye.sh) and on a schedule, with the bot and Home Assistant; stops cleanly on SIGTERM/SIGINT",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      await withVault(
        cmd,
        async (vault) => {
          // Loaded here, not at the top: the daemon's libraries (MQTT, aedes, grammY) would
          // otherwise weigh on the memory of every one-shot command.
          const { ServeController } = await import("../../serve/controller.js");

          const log = vault.logger;
          const controller = new ServeController(vault);
          // Listen before starting anything: a signal during start-up still stops cleanly.
          const stopped = new Promise<NodeJS.Signals>((resolve) => {
            let first: NodeJS.Signals | undefined;
            const onSignal = (signal: NodeJS.Signals) => {
              if (first) {
                if (signal === "SIGINT") {
                  log.warn("second SIGINT: exiting now");
                  process.exit(130);
                }
                log.info({ signal }, "already stopping");
                return;
              }
              first = signal;
              log.info({ signal }, "signal received");
              setTimeout(() => {
                log.error("could not stop cleanly in time: exiting");
                process.exit(EXIT_OK);
              }, HARD_STOP_MS).unref();
              resolve(signal);
            };
            process.on("SIGTERM", onSignal);
            process.on("SIGINT", onSignal);
          });

          try {
            await controller.start();
          } catch (err) {
            await controller.stop();
            throw err;
          }
          await stopped;
          await controller.stop();
          return EXIT_OK;
        },
        { defaultLogLevel: "info" },
      );
      // Everything is closed; a handle some library forgot must not keep the process alive.
      setTimeout(() => process.exit(), 1000).unref();
    });
}
