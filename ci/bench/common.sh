# Shared by the benchmark scripts (sourced, not run): builds the release
# binary, makes a scratch directory removed on exit, and the timing helpers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ci/setup >/dev/null
cargo build --release -p compose >/dev/null 2>&1
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/compose
work=$(mktemp -d /var/tmp/compose-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc -l; }
ratio() { echo "scale=3; $1 / $2" | bc -l; }
