#!/usr/bin/env bash
# etcd 3.4's own e2e etcdctl suite with etcd-edge in place of etcd's gRPC proxy (../shared/conformance):
# the definition of drop-in. A test that fails is run once more (E2E_RETRY=1); it fails the run only when
# it fails twice. Installs Go and etcd's sources from Debian and builds the suite once (root, cached).
set -uo pipefail
cd "$(dirname "$0")/.."
harness=../shared/conformance/etcd-e2e/run.sh
[ -f "$harness" ] || { echo "conformance: $harness not found (shared/ must sit beside the project)" >&2; exit 2; }
[ -f dist/src/main.js ] || npm run build >/dev/null || exit 2
PROXY_CMD="node $PWD/bin/etcd-edge.js start" E2E_RETRY=${E2E_RETRY:-1} exec bash "$harness" "$@"
