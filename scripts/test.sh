#!/usr/bin/env bash
# The whole test suite, from a fresh clone: Debian packages, npm packages, build, lint, types,
# unit + integration tests against real servers. Ends with the line `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-deps.sh || { echo "could not install the Debian packages the tests need"; echo "0 passed, 1 failed"; exit 1; }

# `npm ci` from the committed lock file, which lists every platform's optional builds (biome,
# rollup, esbuild), so the same install works on x64, arm64 and armv7.
# A node_modules that is a link to a shared install (several worktrees of one clone) is never
# reinstalled from here: `npm ci` would empty the install every other worktree runs on.
if [ -L node_modules ]; then
  echo "==> node_modules links to $(readlink node_modules): using that install as it is"
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund || { echo "0 passed, 1 failed"; exit 1; }
fi

checks_failed=0
echo "==> build";     npm run --silent build || checks_failed=$((checks_failed + 1))
echo "==> lint";      npx biome check . || checks_failed=$((checks_failed + 1))
echo "==> typecheck"; npx tsc --noEmit -p tsconfig.json || checks_failed=$((checks_failed + 1))

echo "==> tests"
rm -f test-results.json
npx vitest run --reporter=default --reporter=json --outputFile=test-results.json "$@"
vitest_status=$?

node scripts/test-summary.mjs test-results.json "$checks_failed" "$vitest_status"
