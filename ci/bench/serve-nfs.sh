# NFS part of ci/bench/serve.sh (sourced, not run): compose vs nfs-ganesha
# (VFS FSAL), both exporting the same directory read-only over NFSv3/TCP,
# measured with libnfs-utils: nfs-cat of a BIG_MB file (sequential READs)
# and nfs-ls of a directory of DIR_ENTRIES files (READDIRPLUS). Files are in
# the page cache for both (read once before). Each measurement alternates
# the two servers, ROUNDS times (3), and reports the median.
#
# ganesha registers with the portmapper and exits without one, so it runs
# with its own rpcbind, in a mount namespace with a private /run (no
# /run/rpcbind.sock left on the host). No dbus here: ganesha logs a CRIT per
# dbus call and carries on (only its admin interface needs dbus).
big_mb=${BIG_MB:-1024}
entries=${DIR_ENTRIES:-20000}
rounds=${ROUNDS:-3}
exp=$tree/roots/bench
mkdir -p "$exp/many"
head -c "${big_mb}M" /dev/urandom >"$exp/big"
(cd "$exp/many" && seq -f "f%06g" "$entries" | xargs touch)
cat "$exp/big" >/dev/null
ls -f "$exp/many" >/dev/null

cat >"$work/ganesha.conf" <<EOF
NFS_CORE_PARAM {
  NFS_Port = 2049;
  MNT_Port = 20048;
  Protocols = 3;
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
}
NFSV4 { Graceless = true; }
NFS_KRB5 { Active_krb5 = false; }
EXPORT {
  Export_Id = 1;
  Path = $exp;
  Pseudo = $exp;
  Access_Type = RO;
  Squash = No_Root_Squash;
  Protocols = 3;
  Transports = TCP;
  SecType = sys;
  FSAL { Name = VFS; }
}
EOF

nfs_start() {
  case $1 in
    # MOUNT and NFS share compose's one port.
    compose) compose_serve tcp 2049 --no-dhcp --no-tftp --nfs-port 2049 --server-ip 127.0.0.1; mnt=2049 ;;
    # ganesha exits if rpcbind is not answering yet (a loaded host): wait
    # for its socket (start gives up after 10 s and shows the log).
    ganesha) start ganesha tcp 2049 sh -c "mount -t tmpfs none /run && mkdir /run/rpcbind && { rpcbind -f -w & } &&
      until [ -S /run/rpcbind.sock ]; do sleep 0.1; done &&
      exec ganesha.nfsd -F -L /dev/stderr -f '$work/ganesha.conf' -p /run/ganesha.pid -N NIV_EVENT"
      mnt=20048 ;;
  esac
}
nfs_url() { echo "nfs://$srv_ip$exp/$1?version=3&nfsport=2049&mountport=$mnt"; }
median() { sort -n | sed -n "$(( (rounds + 1) / 2 ))p"; }

nfs_servers=(compose ganesha)
declare -A nt nl
# Correctness first: the same bytes and the same names from both.
for s in "${nfs_servers[@]}"; do
  nfs_start "$s"
  in_cli nfs-cat "$(nfs_url big)" | cmp -s - "$exp/big" || { echo "serve.sh: nfs: $s: nfs-cat of big differs" >&2; exit 1; }
  got=$(in_cli nfs-ls "$(nfs_url many)" | grep -c ' f[0-9]*$' || true)
  [ "$got" = "$entries" ] || { echo "serve.sh: nfs: $s: nfs-ls listed $got of $entries entries" >&2; exit 1; }
  stop
done
for what in cat ls; do
  declare -A samples=()
  for r in $(seq "$rounds"); do
    for s in "${nfs_servers[@]}"; do
      nfs_start "$s"
      t=$(now)
      case $what in
        cat) in_cli nfs-cat "$(nfs_url big)" >/dev/null ;;
        ls) in_cli nfs-ls "$(nfs_url many)" >/dev/null ;;
      esac
      samples[$s]+="$(elapsed "$t") "
      nl[$what,$s]=$(load)
      stop
    done
  done
  for s in "${nfs_servers[@]}"; do nt[$what,$s]=$(tr ' ' '\n' <<<"${samples[$s]}" | grep . | median); done
  unset samples
done

echo
echo "NFS: median of $rounds alternating runs (1-min load at the last run); ratio = compose time / ganesha time"
echo
printf '| measurement | compose | nfs-ganesha | ratio | goal |\n|---|---|---|---|---|\n'
printf '| nfs-cat of a %s MB file | %.2f s (%s MB/s, load %s) | %.2f s (%s MB/s, load %s) | %.2f× | ≤ 1.00× |\n' "$big_mb" \
  "${nt[cat,compose]}" "$(mbps "$big_mb" "${nt[cat,compose]}")" "${nl[cat,compose]}" \
  "${nt[cat,ganesha]}" "$(mbps "$big_mb" "${nt[cat,ganesha]}")" "${nl[cat,ganesha]}" "$(ratio "${nt[cat,compose]}" "${nt[cat,ganesha]}")"
printf '| nfs-ls of %s entries | %.3f s (load %s) | %.3f s (load %s) | %.2f× | ≤ 1.00× |\n' "$entries" \
  "${nt[ls,compose]}" "${nl[ls,compose]}" "${nt[ls,ganesha]}" "${nl[ls,ganesha]}" "$(ratio "${nt[ls,compose]}" "${nt[ls,ganesha]}")"
