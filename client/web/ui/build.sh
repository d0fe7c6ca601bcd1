#!/bin/sh
# Rebuilds the dashboard bundle (../static/app.js, ../static/xterm.css) from src/ and the pinned
# npm packages. The bundle is committed so that `go build` needs no npm; TestBundleUpToDate
# (client/web) fails when it is stale. Run after changing src/ or package.json.
set -eu
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
