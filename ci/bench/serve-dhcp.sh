# DHCP part of ci/bench/serve.sh (sourced, not run): compose vs dnsmasq
# under perfdhcp (kea-admin), full DORA exchanges at fixed request rates
# (DHCP_RATES, each for DHCP_SECS seconds) and once unthrottled.
#
# Both servers know the same DHCP_CLIENTS static leases and nothing else:
# compose from a nodes.toml, dnsmasq from a dhcp-hostsfile with a
# `static`-only range; perfdhcp picks each exchange's MAC at random from the
# same list (-M). perfdhcp acts as a relay (giaddr = its address, replies to
# its port 67), which both servers answer. dnsmasq runs with
# --leasefile-ro: compose keeps no lease state either, so neither writes
# a lease file per ACK.
dhcp_clients=${DHCP_CLIENTS:-1000}
rates=${DHCP_RATES:-"500 1000 2000 4000"}
secs=${DHCP_SECS:-10}

: >"$work/macs.txt" >"$work/nodes.toml" >"$work/dnsmasq.hosts"
for i in $(seq 0 $(( dhcp_clients - 1 ))); do
  mac=$(printf '52:54:01:00:%02x:%02x' $(( i / 256 )) $(( i % 256 )))
  ip=10.99.$(( 1 + i / 250 )).$(( 1 + i % 250 ))
  echo "$mac" >>"$work/macs.txt"
  printf '[[node]]\nhostname = "n%05d"\nmac = "%s"\nip = "%s"\nimage = "bench"\n\n' "$i" "$mac" "$ip" >>"$work/nodes.toml"
  printf '%s,%s,n%05d\n' "$mac" "$ip" "$i" >>"$work/dnsmasq.hosts"
done

dhcp_start() {
  case $1 in
    compose) compose_serve udp 67 --interface sb0 --nodes "$work/nodes.toml" --no-tftp --no-nfs ;;
    dnsmasq) start dnsmasq udp 67 dnsmasq -k --conf-file=/dev/null --pid-file= --port=0 \
      --interface=sb0 --bind-interfaces --dhcp-range=10.99.0.0,static,255.255.0.0 \
      --dhcp-hostsfile="$work/dnsmasq.hosts" --leasefile-ro --dhcp-authoritative --log-facility=- ;;
  esac
}

# perf RATE: one perfdhcp run ("max": unthrottled); prints
# "rate drops% do_avg_ms ra_avg_ms ra_max_ms" from its report.
perf() {
  local out=$work/perfdhcp.out r=()
  [ "$1" = max ] || r=(-r "$1")
  in_cli perfdhcp -4 -l sb1 -M "$work/macs.txt" "${r[@]}" -p "$secs" "$srv_ip" >"$out" 2>&1 || true
  awk '
    /^Rate:/ { rate = $2 }
    /Statistics for: DISCOVER-OFFER/ { sec = "do" }
    /Statistics for: REQUEST-ACK/ { sec = "ra" }
    /^sent packets:/ { sent[sec] = $3 }
    /^drops:/ { drops[sec] = $2 }
    /^avg delay:/ { avg[sec] = $3 }
    /^max delay:/ { max[sec] = $3 }
    END {
      if (rate == "" || sent["do"] == 0) exit 1
      printf "%.0f %.2f %s %s %s\n", rate, 100 * (drops["do"] + drops["ra"]) / (sent["do"] + sent["ra"]), avg["do"], avg["ra"], max["ra"]
    }' "$out" || { echo "serve.sh: dhcp: no perfdhcp report; its output:" >&2; tail -20 "$out" >&2; exit 1; }
}

dhcp_servers=(compose dnsmasq)
declare -A dr dl
# Correctness first: every exchange of a short run answered by both.
for s in "${dhcp_servers[@]}"; do
  dhcp_start "$s"
  read -r rate drops _ <<<"$(secs=2 perf 100)"
  [ "${drops%.*}" -lt 1 ] || { echo "serve.sh: dhcp: $s dropped $drops% at 100/s; see $work/$s.log" >&2; exit 1; }
  stop
done
for rate in $rates max; do
  for s in "${dhcp_servers[@]}"; do
    dhcp_start "$s"
    dr[$rate,$s]=$(perf "$rate")
    dl[$rate,$s]=$(load)
    stop
  done
done

echo
echo "DHCP: perfdhcp DORA, $dhcp_clients static leases, ${secs} s per run; achieved exchanges/s, drops, avg DISCOVER-OFFER / REQUEST-ACK latency, max REQUEST-ACK latency (1-min load)"
echo
printf '| offered rate | compose | dnsmasq | rate ratio (compose / dnsmasq) | goal |\n|---|---|---|---|---|\n'
for rate in $rates max; do
  cell() {
    local r d a1 a2 m
    read -r r d a1 a2 m <<<"${dr[$rate,$1]}"
    printf '%s/s, %s%% drops, %s / %s ms, max %s ms (load %s)' "$r" "$d" "$a1" "$a2" "$m" "${dl[$rate,$1]}"
  }
  printf '| %s | %s | %s | %.2f× | ≥ 1.00× |\n' "$rate" "$(cell compose)" "$(cell dnsmasq)" \
    "$(ratio "${dr[$rate,compose]%% *}" "${dr[$rate,dnsmasq]%% *}")"
done
