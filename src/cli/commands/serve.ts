import type { Command } from "commander";
import { EXIT_OK, withApp } from "../context.js";

/** Past this, a stop that hangs (a broker or server that never answers) ends the process anyway. */
const HARD_STOP_MS = 9300;

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description(
      "the daemon: sync on MQTT triggers (motioneye.sh) and on a schedule, with the bot and Home Assistant; stops cleanly on SIGTERM/SIGINT",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      await withApp(
        cmd,
        async (app) => {
          // Loaded here, not at the top: the daemon's libraries (MQTT, aedes, grammY) would
          // otherwise weigh on the memory of every one-shot command.
          const { ServeController } = await import("../../serve/controller.js");

          const log = app.logger;
          const controller = new ServeController({
            config: app.config,
            logger: app.logger,
            events: app.events,
            sourceSet: app.sourceSet,
            sources: await app.sources(),
            vault: await app.vault(),
            manifest: await app.manifest(),
            engine: await app.engine(),
            lock: await app.lock(),
            keys: await app.keys(),
            bandwidth: app.bandwidth,
          });
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

          // Signal listeners hold no handle: with MQTT, the schedule and HTTP all off, nothing
          // else would keep the process alive until it is told to stop.
          const keepAlive = setInterval(() => {}, 1 << 30);
          void stopped.then(() => clearInterval(keepAlive));
          try {
            await controller.start();
          } catch (err) {
            clearInterval(keepAlive);
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
