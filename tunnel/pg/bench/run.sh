#!/bin/sh
# Runs guardrun's tunnel benchmark (documented in the package comment of
# tunnel/pg/bench): pgbench select-only direct, through a byte relay, through
# pgbouncer and through guardrun, then a streamed million-row result.
# Medians of three rounds; flags given here override the defaults, e.g.
#   tunnel/pg/bench/run.sh -duration 3s -runs 1
# Numbers are only as steady as the machine is quiet.
set -eu
cd "$(dirname "$0")/../../.."
if ! command -v pgbouncer >/dev/null 2>&1; then
	echo "run.sh: pgbouncer is not installed, so its rows are skipped (apt-get install pgbouncer)" >&2
fi
exec go run ./tunnel/pg/bench -runs 3 "$@"
