#!/usr/bin/env bash
# Point-in-time restore of a chain against a restore of its full backup
# alone, with the CLI, interleaved (full, chain, full, chain, ...), each
# after `sync` and a second's rest so that one run's writeback does not
# land in the next. Both skip the integrity check (`--check none`), to
# compare the rebuild itself. Prints each run and the medians.
#
# Usage: benches/chain_restore.sh DIR [REPETITIONS]
# DIR is a directory kept by the increments example
# (`SQLSEAL_KEEP=1 cargo run --release -p sqlseal-engine --example increments`):
# its chain in DIR/chain, its key in DIR/key.pem. Default: 5 repetitions.

set -euo pipefail
export LC_ALL=C

DIR=${1:?usage: benches/chain_restore.sh DIR [REPETITIONS]}
REPS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SQLSEAL="$ROOT/target/release/sqlseal"
[[ -x $SQLSEAL ]] || cargo build --release -p sqlseal-cli --manifest-path "$ROOT/Cargo.toml" >&2
[[ -d $DIR/chain && -f $DIR/key.pem ]] || { echo "chain_restore.sh: $DIR has no chain/ and key.pem" >&2; exit 2; }

OUT=$(mktemp -d "$DIR/restore.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
# The oldest backup of the chain directory is the chain's full backup.
FULL=$(ls "$DIR/chain" | grep '\.sqlseal$' | sort | sed -n 1p)
LINKS=$(($(ls "$DIR/chain" | grep -c '\.sqlseal$') - 1))

seconds() {
    local start end
    rm -f "$OUT/restored.db"
    sync
    sleep 1
    start=$(date +%s.%N)
    "$SQLSEAL" backup restore "$@" --key "$DIR/key.pem" --db "$OUT/restored.db" --check none >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

full=() chain=()
for i in $(seq "$REPS"); do
    f=$(seconds "$DIR/chain/$FULL")
    c=$(seconds --dir "$DIR/chain" --latest)
    echo "run $i: full backup alone ${f} s, newest point (full + $LINKS increments) ${c} s"
    full+=("$f") chain+=("$c")
done
python3 - "${full[*]}" "${chain[*]}" "$LINKS" <<'PY'
import statistics, sys
full = [float(x) for x in sys.argv[1].split()]
chain = [float(x) for x in sys.argv[2].split()]
f, c = statistics.median(full), statistics.median(chain)
print(f"full_restore_median_s={f:.2f}")
print(f"full_restore_fastest_s={min(full):.2f}")
print(f"chain_restore_median_s={c:.2f}")
print(f"chain_restore_fastest_s={min(chain):.2f}")
print(f"links={sys.argv[3]}")
print(f"ratio_of_medians={c / f:.2f}")
PY
