import schedule from "node-schedule";

/** True when node-schedule accepts the expression (the same parser `serve` will use). */
export function isValidCron(expr: string): boolean {
  const job = schedule.scheduleJob(expr, () => {});
  if (!job) return false;
  job.cancel();
  return true;
}
