# TFTP part of ci/bench/serve.sh (sourced, not run): compose vs tftpd-hpa
# and dnsmasq, every client fetching a kernel + initrd pair.
#
# Two clients, the same for every server: tftp-hpa's `tftp` (it sends no
# options, so 512-byte blocks in lock-step, like a PXE ROM without blksize)
# and curl (tftp:// with blksize 1468 and tsize). Each measurement runs the
# three servers back to back (started, measured, killed), so load changes
# hit all of them alike; times are wall clock from the first client's start
# to the last client's end.
mkdir -p "$tree/tftp"
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | tail -1 || true)
initrd=$(ls /boot/initrd.img-* 2>/dev/null | tail -1 || true)
if [ -n "$kernel" ] && [ -n "$initrd" ]; then
  cp "$kernel" "$tree/tftp/vmlinuz"
  cp "$initrd" "$tree/tftp/initrd.img"
  pair="host kernel + initrd"
else
  head -c 8M /dev/urandom >"$tree/tftp/vmlinuz"
  head -c 40M /dev/urandom >"$tree/tftp/initrd.img"
  pair="8 MB + 40 MB (no /boot kernel on this host)"
fi
chmod 644 "$tree/tftp/vmlinuz" "$tree/tftp/initrd.img"
pair_bytes=$(( $(stat -c %s "$tree/tftp/vmlinuz") + $(stat -c %s "$tree/tftp/initrd.img") ))
clients=${CLIENTS:-50}

tftp_start() {
  case $1 in
    compose) compose_serve udp 69 --no-dhcp --no-nfs --server-ip 127.0.0.1 ;;
    tftpd-hpa) start tftpd-hpa udp 69 in.tftpd -L -s "$tree/tftp" ;;
    # --tftp-max: dnsmasq's default cap is 50 transfers; compose's is 1024.
    dnsmasq) start dnsmasq udp 69 dnsmasq -k --conf-file=/dev/null --pid-file= --port=0 \
      --enable-tftp --tftp-root="$tree/tftp" --tftp-max=1024 --log-facility=- ;;
  esac
}

# fetch CLIENT N DEST: N clients at once, each fetching both files into
# DEST (a directory, or /dev/null); fails if any client fails.
fetch() {
  local how=$1 n=$2 dest=$3 j cpids=() rc=0 out_k out_i
  for j in $(seq "$n"); do
    if [ "$dest" = /dev/null ]; then out_k=/dev/null out_i=/dev/null
    else out_k=$dest/vmlinuz.$j out_i=$dest/initrd.img.$j; fi
    case $how in
      tftp) in_cli sh -c "tftp -m binary $srv_ip -c get vmlinuz $out_k && tftp -m binary $srv_ip -c get initrd.img $out_i" \
        >>"$work/client.log" 2>&1 & ;;
      curl) in_cli curl -sS --tftp-blksize 1468 -o "$out_k" "tftp://$srv_ip/vmlinuz" -o "$out_i" "tftp://$srv_ip/initrd.img" \
        >>"$work/client.log" 2>&1 & ;;
    esac
    cpids+=($!)
  done
  for j in "${cpids[@]}"; do wait "$j" || rc=1; done
  # tftp-hpa exits 0 on some errors: it prints them, so check its output too.
  if [ $rc != 0 ] || grep -qi 'error\|timed out\|refused' "$work/client.log"; then
    echo "serve.sh: tftp: a $how client failed:" >&2; tail -5 "$work/client.log" >&2; return 1
  fi
  : >"$work/client.log"
}

tftp_servers=(compose tftpd-hpa dnsmasq)
declare -A tt tl
# Correctness first: every server, both clients, byte-identical files.
for s in "${tftp_servers[@]}"; do
  tftp_start "$s"
  for how in tftp curl; do
    mkdir -p "$work/got"
    fetch "$how" 1 "$work/got"
    cmp -s "$work/got/vmlinuz.1" "$tree/tftp/vmlinuz" && cmp -s "$work/got/initrd.img.1" "$tree/tftp/initrd.img" ||
      { echo "serve.sh: tftp: $s sent different bytes to $how" >&2; exit 1; }
    rm -rf "$work/got"
  done
  stop
done
tftp_rows=("tftp 1" "tftp $clients" "curl 1" "curl $clients")
for row in "${tftp_rows[@]}"; do
  read -r how n <<<"$row"
  for s in "${tftp_servers[@]}"; do
    tftp_start "$s"
    t=$(now)
    fetch "$how" "$n" /dev/null
    tt[$row,$s]=$(elapsed "$t")
    tl[$row,$s]=$(load)
    stop
  done
done

echo
echo "TFTP: $pair, $(( pair_bytes / 1000000 )) MB per client; time (MB/s, 1-min load when done); ratio = compose time / peer time"
echo
printf '| clients | compose | tftpd-hpa | dnsmasq | vs tftpd-hpa | vs dnsmasq | goal |\n|---|---|---|---|---|---|---|\n'
for row in "${tftp_rows[@]}"; do
  read -r how n <<<"$row"
  case $how in tftp) label="$n × tftp-hpa (512 B blocks)" ;; curl) label="$n × curl (blksize 1468)" ;; esac
  cell() { printf '%.2f s (%s MB/s, load %s)' "${tt[$row,$1]}" "$(mbps "$(( n * pair_bytes / 1000000 ))" "${tt[$row,$1]}")" "${tl[$row,$1]}"; }
  printf '| %s | %s | %s | %s | %.2f× | %.2f× | ≤ 1.00× |\n' "$label" "$(cell compose)" "$(cell tftpd-hpa)" "$(cell dnsmasq)" \
    "$(ratio "${tt[$row,compose]}" "${tt[$row,tftpd-hpa]}")" "$(ratio "${tt[$row,compose]}" "${tt[$row,dnsmasq]}")"
done
