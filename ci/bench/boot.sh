#!/usr/bin/env bash
# Power-on to multi-user under `compose boot-test`: one BIOS guest alone, one
# UEFI guest alone, then a boot storm of 4 guests at once (2 BIOS, 2 UEFI),
# each boot split into phases (dhcp, tftp, kernel+initrd, nfs mount,
# userspace) from compose serve's log.
#
#   sudo ci/bench/boot.sh [REFERENCE]     # default: minimal (built if missing)
#
# QEMU runs under TCG here (no usable KVM), so absolute times are far above
# a real machine's; the split shows where the time goes and how a storm
# scales against one boot on the same host.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ref=${1:-minimal}
store=${COMPOSE_STORE:-/var/lib/compose}
if ! "$bin" --store "$store" snapshots --json | grep -q "\"image\": \"${ref%%@*}\""; then
    "$bin" --store "$store" build "recipes/${ref%%@*}.toml" >&2
fi
echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for run in "1 bios" "1 uefi" "4 mixed"; do
    read -r n fw <<<"$run"
    out=$work/boot-$n-$fw.json
    start=$(now)
    "$bin" --store "$store" boot-test "$ref" --guests "$n" --firmware "$fw" --timeout 900 --no-checks --json \
        >"$out" 2>"$work/boot-$n-$fw.err" || { cat "$work/boot-$n-$fw.err" >&2; exit 1; }
    wall=$(elapsed "$start")
    python3 - "$out" "$n $fw" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = sys.argv[2]; wall = float(sys.argv[3])
keys = ["dhcp", "tftp", "kernel_initrd", "nfs_mount", "userspace"]
print(f"{n}: guest(s), whole run {wall:.0f}s (publish {r['publish_seconds']:.1f}s), load {open('/proc/loadavg').read().split()[0]}:")
print(f"  {'node':<13} {'total':>7} " + " ".join(f"{k:>13}" for k in keys))
tot = {k: 0.0 for k in keys + ['total']}
for b in r["boots"]:
    p = b["phases"]
    print(f"  {b['guest']['hostname'] + ' ' + b['guest']['firmware']:<13} {b['seconds']:>6.1f}s " + " ".join(f"{(p[k] or 0):>12.1f}s" for k in keys))
    for k in keys: tot[k] += p[k] or 0
    tot['total'] += b["seconds"]
m = len(r["boots"])
print(f"  {'mean':<13} {tot['total']/m:>6.1f}s " + " ".join(f"{tot[k]/m:>12.1f}s" for k in keys))
PY
done
