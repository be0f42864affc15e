#!/usr/bin/env bash
# Benchmarks `compose exec` against `pdsh -R ssh` and ClusterShell's `clush`:
# wall time of one trivial command on 32 and 64 nodes, same ssh config and
# same fanout for all three, and prints a Markdown table of medians and
# ratios (pasted into BENCHMARKS.md). As root:
#     ci/bench/exec.sh
# The nodes are real sshd instances on 127.0.0.1, one port each, named by
# Host aliases n01.. in a generated ssh_config that every tool gets with -F.
# Sessions get HOME set to the scratch dir (sshd SetEnv) so that root's own
# ~/.bashrc (pyenv, ...) is not part of what is measured.
# Tunables (environment): COMPOSE (binary; default: built by common.sh),
# NODES ("32 64"), FANOUT (64), RUNS (10, rounds; medians are shown), CMD (true).
. "$(dirname "$0")/common.sh"
bin=${COMPOSE:-$bin}
NODES=${NODES:-32 64} FANOUT=${FANOUT:-64} RUNS=${RUNS:-10} CMD=${CMD:-true}

[ "$(id -u)" = 0 ] || { echo "exec.sh: run as root (sshd on loopback ports, logins as root)" >&2; exit 1; }
# need COMMAND PACKAGE: fail early, naming what to install.
need() {
  command -v "$1" >/dev/null || { echo "exec.sh: $1 not found: apt-get install $2" >&2; exit 1; }
}
need ssh openssh-client
need ssh-keygen openssh-client
[ -x /usr/sbin/sshd ] || { echo "exec.sh: /usr/sbin/sshd not found: apt-get install openssh-server" >&2; exit 1; }
need pdsh pdsh
need clush clustershell
need hyperfine hyperfine
need jq jq
need ss iproute2
"$bin" exec --help >/dev/null 2>&1 ||
  { echo "exec.sh: $bin has no \`exec\` verb (build it, or set COMPOSE=path/to/compose)" >&2; exit 1; }

max=0
for n in $NODES; do [ "$n" -gt "$max" ] && max=$n; done
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

ssh-keygen -q -t ed25519 -N '' -C exec-bench -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -C exec-bench -f "$work/id"
cp "$work/id.pub" "$work/authorized_keys"
mkdir -p /run/sshd # privilege separation; normally made by the ssh service
read -r keytype key _ < "$work/host_key.pub"
# Free ports: from a random base, skipping any that something listens on.
port=$((20000 + RANDOM % 20000))
: > "$work/known_hosts"
: > "$work/ssh_config"
ports=()
for i in $(seq 1 "$max"); do
  name=$(printf 'n%02d' "$i")
  while ss -Htln "sport = :$port" | grep -q .; do port=$((port + 1)); done
  cat > "$work/sshd_config-$name" <<EOT
ListenAddress 127.0.0.1:$port
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
X11Forwarding no
PrintMotd no
LogLevel ERROR
SetEnv HOME=$work
EOT
  /usr/sbin/sshd -D -e -f "$work/sshd_config-$name" 2>>"$work/sshd.log" &
  pids+=($!)
  printf 'Host %s\n  HostName 127.0.0.1\n  Port %s\n' "$name" "$port" >> "$work/ssh_config"
  echo "[127.0.0.1]:$port $keytype $key" >> "$work/known_hosts"
  ports+=("$port")
  port=$((port + 1))
done
cat >> "$work/ssh_config" <<EOT
Host *
  IdentityFile $work/id
  IdentitiesOnly yes
  UserKnownHostsFile $work/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  LogLevel ERROR
EOT
cfg=$work/ssh_config
for p in "${ports[@]}"; do
  for _ in $(seq 200); do ss -Htln "sport = :$p" | grep -q . && break; sleep 0.05; done
  ss -Htln "sport = :$p" | grep -q . || { echo "exec.sh: sshd on port $p did not start: $(cat "$work/sshd.log")" >&2; exit 1; }
done

# The handshake dominates: OpenSSH 9's default key exchange
# (sntrup761x25519, post-quantum) costs the client ~100 ms of CPU per
# connection here, curve25519 ~5 ms. Each size is measured with both, the
# second showing the tools' own overhead with less ssh work to hide it.
sed 's/^Host \*$/Host *\n  KexAlgorithms curve25519-sha256/' "$cfg" > "$cfg-curve25519"

# All three: the same ssh config, fanout, BatchMode, no agent/X11 forwarding.
# compose gets an empty publish tree and no inventory, so that neither the
# host's nodes.toml nor its cluster known_hosts changes what it connects to.
compose_cmd() { echo "$bin --root $work/tree exec --nodes $work/none.toml --fanout $FANOUT --ssh-config $2 'n[01-$1]' -- $CMD"; }
pdsh_cmd() { echo "pdsh -R ssh -f $FANOUT -w 'n[01-$1]' $CMD"; }
clush_cmd() { echo "clush -f $FANOUT -o '-F $2 -o BatchMode=yes' -w 'n[01-$1]' $CMD"; }
tools=(compose pdsh clush)

printf '| nodes (fanout %s, `%s`) | ssh key exchange | compose exec | pdsh -R ssh | clush | compose/pdsh | compose/clush |\n' "$FANOUT" "$CMD"
printf '|---|---|---|---|---|---|---|\n'
for n in $NODES; do
  for kex in default curve25519; do
    c=$cfg; [ "$kex" = default ] || c=$cfg-$kex
    export PDSH_SSH_ARGS="-F $c -o BatchMode=yes -a -x -l%u %h"
    # Once by hand first: a setup mistake shows here with its message, and
    # hyperfine below fails on any non-zero exit.
    for tool in "${tools[@]}"; do
      sh -c "$("${tool}_cmd" "$n" "$c")" >/dev/null ||
        { echo "exec.sh: $tool failed on n[01-$n]: $("${tool}_cmd" "$n" "$c")" >&2; exit 1; }
    done
    # Rounds of one run of each tool, so that the other load of the machine
    # drifting during the benchmark weighs on all three alike.
    for r in $(seq "$RUNS"); do
      warm=0; [ "$r" = 1 ] && warm=2
      hyperfine -N --style none --warmup "$warm" --runs 1 --export-json "$work/$n-$kex-$r.json" \
        -n compose "$(compose_cmd "$n" "$c")" -n pdsh "$(pdsh_cmd "$n")" -n clush "$(clush_cmd "$n" "$c")" >/dev/null 2>&1
    done
    med() { jq -s "[.[].results[] | select(.command == \"$1\") | .times[0]] | sort | .[length / 2 | floor]" "$work/$n-$kex"-*.json; }
    ms() { printf '%.0f ms' "$(echo "$1 * 1000" | bc -l)"; }
    c=$(med compose) p=$(med pdsh) k=$(med clush)
    printf '| %s | %s | %s | %s | %s | %.2f× | %.2f× |\n' "$n" "$kex" "$(ms "$c")" "$(ms "$p")" "$(ms "$k")" \
      "$(ratio "$c" "$p")" "$(ratio "$c" "$k")"
  done
done
