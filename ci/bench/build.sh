#!/usr/bin/env bash
# Benchmarks `compose build` against plain mmdebstrap, in one run, and prints
# a Markdown table of times and ratios (pasted into BENCHMARKS.md).
#     ci/bench/build.sh
# 1. cold build of a base-only recipe vs mmdebstrap of the same package set
#    (compose's overhead: scrub, scan, tar and sha256 of the whole root);
# 2. no-op rebuild (every layer a hit);
# 3. incremental rebuild after changing the last layer of recipes/minimal.toml,
#    against the cold build of the same recipe.
. "$(dirname "$0")/common.sh"
packages="linux-image-amd64,initramfs-tools,zstd,systemd-sysv,udev,kmod,iproute2,procps"
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\) *$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}


cat > "$work/base.toml" <<EOT
[image]
name = "bench-base"
[base]
suite = "bookworm"
mirror = "$mirror"
packages = [$(echo "$packages" | sed 's/\([^,]*\)/"\1"/g')]
EOT

# Warm the host's caches (DNS, mirror) once so neither side pays for it.
SOURCE_DATE_EPOCH=1704067200 mmdebstrap --variant=minbase --include="$packages" bookworm "$work/warm" "$mirror" >/dev/null 2>&1
rm -rf "$work/warm"

t=$(now)
SOURCE_DATE_EPOCH=1704067200 mmdebstrap --variant=minbase --include="$packages" bookworm "$work/plain" "$mirror" >/dev/null 2>&1
t_mm=$(elapsed "$t")
rm -rf "$work/plain"

t=$(now)
"$bin" --store "$work/store" build "$work/base.toml" 2>/dev/null
t_cold=$(elapsed "$t")

t=$(now)
"$bin" --store "$work/store" build "$work/base.toml" 2>/dev/null
t_noop=$(elapsed "$t")

# A fresh store, so the base of minimal.toml is not a hit from the first part.
cp -a recipes layers "$work/"
t=$(now)
"$bin" --store "$work/store2" build "$work/recipes/minimal.toml" 2>/dev/null
t_min_cold=$(elapsed "$t")
printf '\n[[layer]]\nname = "bench-last"\nkind = "script"\nrun = "echo 1 > /etc/bench"\n' >> "$work/recipes/minimal.toml"
"$bin" --store "$work/store2" build "$work/recipes/minimal.toml" 2>/dev/null
sed -i 's|echo 1 > /etc/bench|echo 2 > /etc/bench|' "$work/recipes/minimal.toml"
t=$(now)
"$bin" --store "$work/store2" build "$work/recipes/minimal.toml" 2>/dev/null
t_incr=$(elapsed "$t")

printf '| measurement | compose | peer | ratio | goal |\n|---|---|---|---|---|\n'
printf '| cold build, base only (%s) | %.1f s | mmdebstrap %.1f s | %s× | ≤ 1.10× |\n' "$packages" "$t_cold" "$t_mm" "$(ratio "$t_cold" "$t_mm")"
printf '| no-op rebuild (all hits) | %.2f s | — | — | ≤ 1 s |\n' "$t_noop"
printf '| incremental: last layer of minimal.toml changed | %.1f s | cold build of minimal.toml %.1f s | %s× | ≤ 0.05× |\n' "$t_incr" "$t_min_cold" "$(ratio "$t_incr" "$t_min_cold")"
