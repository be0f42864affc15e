#!/usr/bin/env bash
# Benchmarks `compose serve` against the real peers, side by side in one run,
# and prints Markdown tables of times, rates and ratios (pasted into
# BENCHMARKS.md). As root:
#     ci/bench/serve.sh [tftp] [nfs] [dhcp]        (default: all three)
# Parts: serve-tftp.sh (tftpd-hpa, dnsmasq), serve-nfs.sh (nfs-ganesha),
# serve-dhcp.sh (dnsmasq under perfdhcp); each is sourced from here.
#
# Traffic never leaves the machine: two network namespaces joined by a veth
# pair, servers in one (10.99.0.1), clients in the other (10.99.0.2). Servers
# run one at a time, in the foreground, and are killed (by pid) after their
# measurement; the EXIT trap kills whatever is left and deletes the
# namespaces. Tunables (environment): CLIENTS (50), BIG_MB (1024), DIR_ENTRIES
# (20000), DHCP_CLIENTS (1000), DHCP_RATES ("500 1000 2000 4000"), DHCP_SECS (10).
. "$(dirname "$0")/common.sh"
bench=$(dirname "$0")

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(tftp nfs dhcp)

[ "$(id -u)" = 0 ] || { echo "serve.sh: run as root (namespaces, ports 67/69/111)" >&2; exit 1; }
# need COMMAND PACKAGE: fail early, naming what to install.
need() {
  command -v "$1" >/dev/null || { echo "serve.sh: $1 not found: apt-get install $2" >&2; exit 1; }
}
need ip iproute2
need ss iproute2
need bc bc
for p in "${parts[@]}"; do
  case $p in
    tftp) need in.tftpd tftpd-hpa; need dnsmasq dnsmasq; need tftp tftp-hpa; need curl curl ;;
    nfs) need ganesha.nfsd "nfs-ganesha nfs-ganesha-vfs"; need nfs-cat libnfs-utils; need nfs-ls libnfs-utils
      [ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || ls /usr/lib/*/ganesha/libfsalvfs.so >/dev/null 2>&1 ||
        { echo "serve.sh: ganesha's VFS FSAL not found: apt-get install nfs-ganesha-vfs" >&2; exit 1; } ;;
    dhcp) need perfdhcp kea-admin; need dnsmasq dnsmasq ;;
    *) echo "serve.sh: unknown part '$p' (tftp, nfs or dhcp)" >&2; exit 1 ;;
  esac
done

srv=sbench-srv-$$ cli=sbench-cli-$$
srv_ip=10.99.0.1 cli_ip=10.99.0.2
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in $(ip netns pids "$srv" 2>/dev/null) $(ip netns pids "$cli" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  ip netns del "$srv" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The servers drop to nobody (dnsmasq, in.tftpd, ganesha's VFS): let them in.
chmod 755 "$work"

ip netns add "$srv"
ip netns add "$cli"
ip link add sb0 netns "$srv" type veth peer name sb1 netns "$cli"
ip -n "$srv" addr add "$srv_ip/16" dev sb0
ip -n "$cli" addr add "$cli_ip/16" dev sb1
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set sb0 up
ip -n "$cli" link set sb1 up
in_srv() { ip netns exec "$srv" "$@"; }
in_cli() { ip netns exec "$cli" "$@"; }

# start NAME PROTO PORT CMD...: runs CMD in the server namespace, logging to
# $work/NAME.log, and waits until it listens on PROTO (tcp/udp) PORT.
server_pid=
start() {
  local name=$1 proto=$2 port=$3 i
  shift 3
  # Not through in_srv: a backgrounded function is a subshell, and killing
  # it would leave the server running. `ip netns exec` execs the command.
  ip netns exec "$srv" "$@" >"$work/$name.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  for i in $(seq 100); do
    if in_srv ss -Hln -"${proto:0:1}" "sport = :$port" | grep -q .; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "serve.sh: $name did not start listening on $proto $port; its log:" >&2
  tail -20 "$work/$name.log" >&2
  exit 1
}
# Kills the server and whatever it left in the server namespace (ganesha's
# rpcbind): every process there is one this script started.
stop() {
  local p
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  for p in $(ip netns pids "$srv"); do kill "$p" 2>/dev/null || true; done
  server_pid=
}
load() { uptime | sed 's/.*load average: \([0-9.]*\),.*/\1/'; }
mbps() { echo "scale=1; $1 / $2" | bc -l; }

# compose serve on the tree $work/tree; the flags pick the servers.
tree=$work/tree
mkdir -p "$tree"
# compose_serve PROTO PORT FLAGS...
compose_serve() { start compose "$1" "$2" "$bin" --root "$tree" serve "${@:3}"; }

for p in "${parts[@]}"; do
  . "$bench/serve-$p.sh"
done
