// Reads vitest's JSON report and prints the closing line CI reads: `N passed, N failed`.
// Lint, typecheck and build count as one check each; a crashed runner counts as a failure.
import { existsSync, readFileSync } from "node:fs";

const [file, checksFailedArg, vitestStatusArg] = process.argv.slice(2);
const checksFailed = Number(checksFailedArg ?? 0);
const vitestStatus = Number(vitestStatusArg ?? 0);
let passed = 3 - checksFailed;
let failed = checksFailed;
let skipped = 0;
if (file && existsSync(file)) {
  const report = JSON.parse(readFileSync(file, "utf8"));
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // A suite that failed to load (syntax error, failing hook) has no failed test of its own.
  const brokenSuites = (report.testResults ?? []).filter(
    (r) => r.status === "failed" && (r.assertionResults ?? []).every((a) => a.status !== "failed"),
  );
  for (const s of brokenSuites) console.log(`suite failed to run: ${s.name}: ${s.message ?? ""}`);
  failed += brokenSuites.length;
} else {
  failed += 1;
}
if (failed === 0 && vitestStatus !== 0) failed = 1;
process.exitCode = failed === 0 ? 0 : 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
