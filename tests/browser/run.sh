#!/usr/bin/env bash
# Browser tests of the web page: against `dsobel serve` and through nginx.
# Needs Node 20+, Chromium (apt-get install -y chromium chromium-driver) and nginx (apt-get install -y nginx).
# DSOBEL_BIN picks the binary (default target/debug/dsobel), DSOBEL_PHOTOS the photo folder.
# With CI set, a missing tool fails the tests; otherwise they are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/playwright-core ]; then
    npm ci --no-audit --no-fund
fi
# Arguments name test files to run (default: all of them).
if [ "$#" -eq 0 ]; then
    set -- ./*.test.mjs
fi
exec node --test --test-concurrency=1 --test-reporter=spec "$@"
