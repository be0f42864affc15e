#!/usr/bin/env bash
# Benchmarks publish, rollback and diff against their plain peers in one run
# and prints a Markdown table (pasted into BENCHMARKS.md).
#     ci/bench/publish.sh
# Builds recipes/minimal.toml (~700 MB root) and two variants: one file
# changed in a last layer, and one with a 1.3 GB file added (a ~2 GB root).
. "$(dirname "$0")/common.sh"
export COMPOSE_STORE=$work/store COMPOSE_ROOT=$work/tree
cp -a recipes layers "$work/"
used() { df -B1 --output=used "$work" | tail -1; }
ms() { echo "$1 * 1000" | bc -l; }

"$bin" build "$work/recipes/minimal.toml" 2>/dev/null
a=$("$bin" snapshots minimal --json | sed -n 's/.*"id": "\(sha256:[0-9a-f]*\)".*/\1/p' | tail -1)
printf '\n[[layer]]\nname = "one-file"\nkind = "script"\nrun = "echo changed > /etc/compose-bench"\n' >> "$work/recipes/minimal.toml"
"$bin" build "$work/recipes/minimal.toml" 2>/dev/null
b=$("$bin" snapshots minimal --json | sed -n 's/.*"id": "\(sha256:[0-9a-f]*\)".*/\1/p' | tail -1)
cp "$work/recipes/minimal.toml" "$work/recipes/big.toml"
sed -i 's/^name = "minimal"/name = "big"/' "$work/recipes/big.toml"
printf '\n[[layer]]\nname = "big-file"\nkind = "script"\nrun = "head -c 1300M /dev/urandom > /opt/big"\n' >> "$work/recipes/big.toml"
"$bin" build "$work/recipes/big.toml" 2>/dev/null
sync

# 1. first publish vs cp -a of the same root (both synced to disk)
u0=$(used); t=$(now)
"$bin" publish "minimal@$a" 2>/dev/null
t_pub=$(elapsed "$t"); u1=$(used)
root=$("$bin" generations minimal --json | sed -n 's/.*"root": "\(.*\)".*/\1/p' | head -1)
t=$(now)
cp -a "$root" "$work/cp-copy" && sync
t_cp=$(elapsed "$t")
rm -rf "$work/cp-copy"; sync

# 2. publish of the one-file change on top
u2=$(used); t=$(now)
"$bin" publish "minimal@$b" 2>/dev/null
t_pub2=$(elapsed "$t"); u3=$(used)

# 3. rollback latency, ~700 MB and ~2 GB images (median of 5)
rollback_ms() {
  local img=$1 best=() i
  for i in 1 2 3 4 5; do
    t=$(now); "$bin" rollback "$img" --to "$2" >/dev/null 2>&1; best+=("$(ms "$(elapsed "$t")")")
    "$bin" rollback "$img" --to "$3" >/dev/null 2>&1
  done
  printf '%s\n' "${best[@]}" | sort -n | sed -n 3p
}
"$bin" publish big 2>/dev/null
printf '\n[[layer]]\nname = "big-2"\nkind = "script"\nrun = "echo 2 > /etc/big"\n' >> "$work/recipes/big.toml"
"$bin" build "$work/recipes/big.toml" 2>/dev/null
"$bin" publish big 2>/dev/null
rb_small=$(rollback_ms minimal 1 2)
big_root=$("$bin" generations big --json | sed -n 's/.*"root": "\(.*\)".*/\1/p' | head -1)
big_size=$(du -sh "$big_root" | cut -f1)
rb_big=$(rollback_ms big 1 2)

# 4. diff of two snapshots (one file apart, ~20k files each) vs diff -r
t=$(now); "$bin" diff "minimal@gen1" "minimal@gen2" >/dev/null; t_diff=$(elapsed "$t")
root_b=$("$bin" generations minimal --json | sed -n 's/.*"root": "\(.*\)".*/\1/p' | sed -n 2p)
t=$(now); diff -r --no-dereference "$root" "$root_b" >/dev/null 2>&1 || true; t_diffr=$(elapsed "$t")
files=$(find "$root" | wc -l)

printf '| measurement | compose | peer | ratio | goal |\n|---|---|---|---|---|\n'
printf '| first publish, %s root | %.2f s, %s MB | cp -a + sync %.2f s | %s× | ≤ 1.2× |\n' \
  "$(du -sh "$root" | cut -f1)" "$t_pub" "$(( (u1 - u0) / 1000000 ))" "$t_cp" "$(ratio "$t_pub" "$t_cp")"
printf '| publish of a one-file change | %.2f s, %s MB added | first publish %.2f s, %s MB | %s× time, %s× disk | ≤ 0.05× |\n' \
  "$t_pub2" "$(( (u3 - u2) / 1000000 ))" "$t_pub" "$(( (u1 - u0) / 1000000 ))" "$(ratio "$t_pub2" "$t_pub")" "$(ratio "$(( u3 - u2 ))" "$(( u1 - u0 ))")"
printf '| rollback, %s image | %.1f ms | — | — | ≤ 50 ms |\n' "$(du -sh "$root" | cut -f1)" "$rb_small"
printf '| rollback, %s image | %.1f ms | — | — | ≤ 50 ms, equal |\n' "$big_size" "$rb_big"
printf '| diff of two %s-file snapshots | %.3f s | diff -r %.2f s | %s× | ≤ 1 s |\n' "$files" "$t_diff" "$t_diffr" "$(ratio "$t_diff" "$t_diffr")"
