import schedule from "node-schedule";
import type { Config } from "../config/load.js";
import { errorMessage, type Logger } from "../util/log.js";
import type { Triggers } from "./triggers.js";

/**
 * Time-based work on node-schedule: `schedule.sync` (cron) asks the queue for a catch-up run;
 * `retention.schedule` runs the opt-in retention job (only when `retention.remoteDays` is set).
 */

export interface SchedulerDeps {
  config: Config;
  queue: Triggers;
  logger: Logger;
  /** The retention job; called only when retention.remoteDays is set. */
  retention: () => Promise<void>;
}

export class Scheduler {
  private readonly jobs: schedule.Job[] = [];
  private syncJob: schedule.Job | undefined;

  constructor(private readonly deps: SchedulerDeps) {}

  start(): void {
    const { config, queue, logger } = this.deps;
    const cron = config.schedule.sync.trim();
    if (cron === "") {
      logger.info("no schedule.sync: catch-up runs only on triggers");
    } else {
      this.syncJob = this.add(cron, () => {
        queue.request({ origin: "schedule" }).catch((err: unknown) => {
          logger.debug({ err: errorMessage(err) }, "scheduled run not done");
        });
      });
      logger.info({ cron, next: this.nextSync()?.toISOString() }, "scheduled catch-up runs");
    }
    queue.setNextScheduledRun(() => this.nextSync());

    const days = config.retention.remoteDays;
    if (days !== undefined) {
      this.add(config.retention.schedule, () => {
        this.deps.retention().catch((err: unknown) => {
          logger.error({ err: errorMessage(err) }, "retention failed");
        });
      });
      logger.info(
        { cron: config.retention.schedule, remoteDays: days, dryRun: config.retention.dryRun },
        config.retention.dryRun
          ? "retention scheduled (dry run: logs what it would delete)"
          : "retention scheduled: remote clips older than remoteDays are deleted",
      );
    }
  }

  nextSync(): Date | undefined {
    const next = this.syncJob?.nextInvocation() as unknown as { toDate?: () => Date } | null;
    // node-schedule hands out a CronDate despite its Date typing.
    return next?.toDate ? next.toDate() : ((next as unknown as Date | undefined) ?? undefined);
  }

  stop(): void {
    for (const job of this.jobs.splice(0)) job.cancel();
    this.syncJob = undefined;
  }

  private add(cron: string, fn: () => void): schedule.Job {
    const job = schedule.scheduleJob(cron, fn);
    if (!job) throw new Error(`invalid cron expression "${cron}"`);
    this.jobs.push(job);
    return job;
  }
}
