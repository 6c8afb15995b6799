# Guest-side helpers for test-bed scenarios: hosts as network namespaces on one bridge, one pluto
# per host, and assertions that say what did not happen. Sourced by run-one before a scenario.
# Processes start 15-60 times slower in UML than on the host: keep loops short.

TB_RUN=/run/tb
: "${UPDOWN:=/usr/libexec/ipsec/_updown}"
: "${TB_SCENARIO:=scenario}"

ok() { echo "ok - $TB_SCENARIO: $*"; }
note() { echo "note - $TB_SCENARIO: $*"; }

# fail MESSAGE: says what did not happen, shows the evidence, and ends the scenario.
fail() {
  echo "FAIL - $TB_SCENARIO: $*"
  set +e  # the evidence is best effort: a host with no SA must not cut the dump short
  for host in $TB_HOSTS; do
    echo "--- $host: pluto log (tail)"; tail -n 15 "$TB_RUN/$host/pluto.log" 2>/dev/null | sed 's/^/    /'
    [ -f "$TB_RUN/$host/vtid.log" ] && { echo "--- $host: vtid log (tail)"; tail -n 25 "$TB_RUN/$host/vtid.log" | sed 's/^/    /'; }
    echo "--- $host: links, VTI devices, routes, xfrm state"
    ip -n "$host" -br link 2>/dev/null | sed 's/^/    /'
    ip -n "$host" -d link show type vti 2>/dev/null | grep -E '^[0-9]|vti ' | sed 's/^/    /'
    ip -n "$host" route 2>/dev/null | sed 's/^/    /'
    ip -n "$host" -s xfrm state 2>/dev/null | grep -E '^src|mark|lifetime current|bytes' | sed 's/^/    /'
    if [ -S "$TB_RUN/$host/bird.ctl" ]; then
      echo "--- $host: BIRD protocols and routes"
      birdc -s "$TB_RUN/$host/bird.ctl" show protocols 2>&1 | sed 's/^/    /'
      birdc -s "$TB_RUN/$host/bird.ctl" show route 2>&1 | head -n 20 | sed 's/^/    /'
      tail -n 10 "$TB_RUN/$host/bird.log" 2>/dev/null | sed 's/^/    /'
    fi
  done
  exit 1
}

# The switch: a namespace with a bridge that every host's uplink plugs into.
tb_switch() {
  TB_HOSTS=""
  mkdir -p "$TB_RUN"
  ip netns add sw
  ip -n sw link add br0 type bridge
  ip -n sw link set br0 up
}

# tb_host NAME UPLINK_CIDR [LAN_CIDR]: a namespace with eth0 on the switch and a dummy LAN device.
tb_host() {
  local name=$1 uplink=$2 lan=${3:-}
  ip netns add "$name"
  ip link add eth0 netns "$name" type veth peer name "p-$name" netns sw
  ip -n sw link set "p-$name" master br0 up
  ip -n "$name" link set lo up
  ip -n "$name" addr add "$uplink" dev eth0
  ip -n "$name" link set eth0 up
  if [ -n "$lan" ]; then
    ip -n "$name" link add lan0 type dummy
    ip -n "$name" addr add "$lan" dev lan0
    ip -n "$name" link set lan0 up
  fi
  TB_HOSTS="$TB_HOSTS $name"
  mkdir -p "$TB_RUN/$name"
}

# The updown program pluto runs: $UPDOWN, or with TESTBED_RECORD=1 a wrapper that first saves the
# call's whole environment (sorted KEY=VALUE lines) as
# $TESTBED_OUT/fixtures/<scenario>-<host>-<NN>-<verb>.env, NN counting the host's calls.
# Left out: the test bed's own variables (kernel arguments, which are lower case, TB_HOST,
# TESTBED_*, SCENARIO_TIMEOUT, UPDOWN), and the calls tb_cleanup's killing of pluto causes, which
# race with the kill. The host's name reaches the wrapper as TB_HOST, set on its pluto by tb_pluto.
tb_updown() {
  if [ "${TESTBED_RECORD:-}" = 1 ]; then
    local wrapper="$TB_RUN/record-updown"
    mkdir -p "$TB_RUN" "$TESTBED_OUT/fixtures"
    cat >"$wrapper" <<WRAP
#!/bin/sh
if [ ! -e "$TB_RUN/cleaning-up" ]; then
  counter="$TB_RUN/\$TB_HOST/updown.count"
  n=\$(( \$(cat "\$counter" 2>/dev/null || echo 0) + 1 )); echo \$n >"\$counter"
  env | grep -vE '^(TB_HOST|TESTBED_[A-Z_]*|SCENARIO_TIMEOUT|UPDOWN|[a-z][a-z0-9_]*|HOME|OLDPWD|PWD|SHLVL|TERM|PATH|_)=' | sort \
    >"$TESTBED_OUT/fixtures/$TB_SCENARIO-\$TB_HOST-\$(printf %02d \$n)-\$PLUTO_VERB.env"
fi
exec "$UPDOWN" "\$@"
WRAP
    chmod +x "$wrapper"
    echo "$wrapper"
  else
    echo "$UPDOWN"
  fi
}

# tb_pluto NAME CONFIG_TEXT SECRETS_TEXT: starts pluto in NAME with its own NSS, files and socket.
tb_pluto() {
  local name=$1 dir="$TB_RUN/$1"
  printf '%s\n' "$2" >"$dir/ipsec.conf"
  printf '%s\n' "$3" >"$dir/ipsec.secrets"
  chmod 600 "$dir/ipsec.secrets"
  mkdir -p "$dir/nss"
  ipsec initnss --nssdir "$dir/nss" >/dev/null 2>&1 || fail "$name: ipsec initnss failed"
  tb_pluto_run "$name"
}

# tb_pluto_run NAME: starts (or after a crash, restarts) NAME's pluto with the files tb_pluto wrote.
tb_pluto_run() {
  local name=$1 dir="$TB_RUN/$1"
  rm -f "$dir/pluto.ctl" "$dir/pluto.pid"
  TB_HOST=$name ip netns exec "$name" /usr/libexec/ipsec/pluto --nofork --config "$dir/ipsec.conf" --rundir "$dir" \
    --nssdir "$dir/nss" --secretsfile "$dir/ipsec.secrets" --ipsecdir "$dir" --dumpdir "$dir" \
    --logfile "$dir/pluto.log" >/dev/null 2>&1 &
  echo $! >"$dir/pluto.pid"
  disown
  local waited=0
  until [ -S "$dir/pluto.ctl" ]; do
    sleep 0.2; waited=$((waited + 1))
    [ $waited -lt 50 ] || fail "$name: pluto did not open its control socket $dir/pluto.ctl within 10 s"
  done
}

tb_whack() { local name=$1; shift; ip netns exec "$name" ipsec whack --ctlsocket "$TB_RUN/$name/pluto.ctl" "$@"; }

# tb_add NAME CONN: loads a conn from the host's config.
tb_add() {
  local said
  said=$(ip netns exec "$1" ipsec auto --config "$TB_RUN/$1/ipsec.conf" --ctlsocket "$TB_RUN/$1/pluto.ctl" --add "$2" 2>&1) \
    || fail "$1: could not add conn $2: $(grep -v 'has been deprecated' <<<"$said" | tr '\n' ' ')"
}

# tb_up NAME CONN PEER [SECONDS]: initiates and waits for the Child SA, or fails saying which SA
# was not established, pluto's reason if it logged one, and the tail of its log.
tb_up() {
  local name=$1 conn=$2 peer=$3 limit=${4:-30} dir="$TB_RUN/$1"
  timeout "$limit" ip netns exec "$name" ipsec whack --ctlsocket "$dir/pluto.ctl" --name "$conn" --initiate \
    >"$dir/initiate.log" 2>&1 || true
  # Into files first: `grep -q` quitting early would SIGPIPE whack and, with pipefail, fail.
  tb_whack "$name" --trafficstatus >"$dir/traffic.log" 2>&1 || true
  if ! grep -q "\"$conn\"" "$dir/traffic.log"; then
    local why what tail
    why=$(grep -hoE 'AUTHENTICATION_FAILED|authentication failed|NO_PROPOSAL_CHOSEN|TS_UNACCEPTABLE|INTERNAL_ADDRESS_FAILURE|no suitable connection|retransmission timeout' \
      "$dir/initiate.log" "$dir/pluto.log" 2>/dev/null | tail -n 1 || true)
    tb_whack "$name" --showstates >"$dir/states.log" 2>&1 || true
    if grep -q "ESTABLISHED_IKE_SA" "$dir/states.log"; then
      what="the IKE SA with $peer is up but no IPsec SA (Child SA) for $conn was established within $limit s"
    else
      what="IKE SA with $peer was not established within $limit s"
    fi
    # pluto's own sentence for the reason, e.g. '"s2s" #1: IKE SA authentication request rejected
    # by peer: AUTHENTICATION_FAILED'; else the last lines it logged. Timestamps stripped.
    tail=""
    [ -z "$why" ] || tail=$(grep -F "$why" "$dir/pluto.log" 2>/dev/null | tail -n 1 || true)
    [ -n "$tail" ] || tail=$(tail -n 2 "$dir/pluto.log" 2>/dev/null || true)
    tail=$(sed -E 's/^[A-Z][a-z]{2} [ 0-9]{2} [0-9:.]+: //' <<<"$tail" | tr '\n' ' ')
    fail "$name: $what (pluto says: ${why:-no reason}; pluto log: $tail)"
  fi
  ok "$name: tunnel $conn to $peer established (IKE and IPsec SAs)"
}

# tb_down NAME CONN: deletes the conn (down-client, then unroute-client).
tb_down() { tb_whack "$1" --name "$2" --delete >/dev/null 2>&1 || true; }

# expect_ping HOST SOURCE DESTINATION WHAT
expect_ping() {
  ip netns exec "$1" ping -c 2 -i 0.3 -W 2 -I "$2" "$3" >/dev/null 2>&1 \
    || fail "$1: no answer from $3 (source $2): $4 does not work"
  ok "$1: $2 reaches $3 ($4)"
}

expect_no_ping() {
  if ip netns exec "$1" ping -c 1 -W 1 -I "$2" "$3" >/dev/null 2>&1; then fail "$1: $3 still answers $2: $4"; fi
  ok "$1: $2 no longer reaches $3 ($4)"
}

# expect_vti HOST DEV LOCAL REMOTE KEY: the device exists, is up, and has these end points and keys.
expect_vti() {
  local host=$1 dev=$2 local_addr=$3 remote=$4 key=$5 shown shown_remote=$4
  shown=$(ip -n "$host" -d link show "$dev" 2>/dev/null) || fail "$host: VTI device $dev does not exist"
  [ "$remote" = 0.0.0.0 ] && shown_remote=any  # how iproute2 prints a shared device's remote
  grep -q "vti remote $shown_remote local $local_addr ikey 0.0.0.$key okey 0.0.0.$key" <<<"$shown" \
    || fail "$host: $dev has other parameters than remote $remote local $local_addr key $key: $(echo "$shown" | grep vti)"
  grep -q "[<,]UP[,>]" <<<"${shown%%$'\n'*}" || fail "$host: $dev is not up"
  ok "$host: $dev is up, remote $remote local $local_addr, ikey/okey $key"
}

# expect_route HOST PREFIX DEV
expect_route() {
  grep -q "dev $3" <<<"$(ip -n "$1" route show "$2")" || fail "$1: no route $2 dev $3 (routes: $(ip -n "$1" route | tr '\n' ';'))"
  ok "$1: route $2 dev $3"
}

# sa_counters HOST: "BYTES PACKETS", summed over the host's SAs (`ip -s xfrm state` prints them
# as "N(bytes), M(packets)" on the line after "lifetime current:").
sa_counters() {
  ip -n "$1" -s xfrm state | awk '/lifetime current:/ { getline; b += $1; p += $2 } END { print b + 0, p + 0 }'
}

# expect_sa_counters_moved HOST BEFORE: the SAs carried traffic since BEFORE (from sa_counters):
# both their byte and packet counters grew.
expect_sa_counters_moved() {
  local now
  now=$(sa_counters "$1")
  [ "${now%% *}" -gt "${2%% *}" ] && [ "${now##* }" -gt "${2##* }" ] \
    || fail "$1: SA counters did not move (bytes packets before: $2, after: $now): traffic did not go through IPsec"
  ok "$1: SA counters moved (bytes packets: $2 -> $now)"
}

# expect_device_counters_moved HOST DEV BEFORE_TX_PACKETS
dev_tx_packets() { ip -n "$1" -s link show "$2" | awk '/TX:/ { getline; print $2; exit }'; }
expect_device_counters_moved() {
  local now
  now=$(dev_tx_packets "$1" "$2")
  [ "${now:-0}" -gt "$3" ] || fail "$1: $2 sent no packets ($3 before, ${now:-0} after): traffic did not go through the VTI"
  ok "$1: $2 carried traffic ($3 -> $now packets sent)"
}

# Stops every pluto and removes every namespace, so the next scenario starts clean.
tb_cleanup() {
  local pids
  [ -d "$TB_RUN" ] && touch "$TB_RUN/cleaning-up"
  pids=$(cat "$TB_RUN"/*/pluto.pid "$TB_RUN"/*/vtid.pid "$TB_RUN"/*/bird.pid 2>/dev/null || true)
  if [ -n "$pids" ]; then
    kill $pids 2>/dev/null || true
    sleep 0.3
    kill -9 $pids 2>/dev/null || true
  fi
  for ns in $(ip netns list | awk '{print $1}'); do ip netns del "$ns"; done
  rm -rf "$TB_RUN"
  TB_HOSTS=""
}

# expect_no_route HOST PREFIX WHAT
expect_no_route() {
  if [ -n "$(ip -n "$1" route show "$2")" ]; then fail "$1: route $2 is still there: $3"; fi
  ok "$1: no route $2 ($3)"
}

# expect_mtu HOST DEV MTU WHY
expect_mtu() {
  local mtu
  mtu=$(ip -n "$1" -o link show "$2" 2>/dev/null | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')
  [ "$mtu" = "$3" ] || fail "$1: $2 has MTU ${mtu:-none}, expected $3 ($4)"
  ok "$1: $2 MTU $3 ($4)"
}

# expect_sysctl HOST KEY VALUE
expect_sysctl() {
  local value
  value=$(ip netns exec "$1" cat "/proc/sys/$(echo "$2" | tr . /)" 2>/dev/null)
  [ "$value" = "$3" ] || fail "$1: $2 is ${value:-missing}, expected $3"
  ok "$1: $2 = $3"
}

# expect_no_link HOST DEV WHY
expect_no_link() {
  if ip -n "$1" link show "$2" >/dev/null 2>&1; then fail "$1: $2 still exists: $3"; fi
  ok "$1: $2 is gone ($3)"
}

# expect_route_protocol HOST PREFIX PROTO: our hook tags its routes.
expect_route_protocol() {
  grep -q "proto $3" <<<"$(ip -n "$1" route show "$2")" || fail "$1: route $2 is not tagged proto $3: $(ip -n "$1" route show "$2")"
  ok "$1: route $2 carries proto $3"
}

# run_hook HOST FIXTURE [NAME=VALUE...]: runs $UPDOWN in HOST with exactly the environment of a
# recorded pluto call (Tests/VTIModelTests/Fixtures/...), changed by the NAME=VALUE arguments.
# Prints the hook's output; returns its status.
TB_FIXTURES=${TB_FIXTURES:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/Tests/VTIModelTests/Fixtures/libreswan-4.10-updown}
run_hook() {
  local host=$1 fixture=$2 variables=()
  shift 2
  mapfile -t variables <"$TB_FIXTURES/$fixture.env"
  ip netns exec "$host" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${variables[@]}" "$@" "$UPDOWN" 2>&1
}

# kernel_state HOST: links, addresses, routes and VTI sysctls, for before/after comparisons.
# IPv4 only: IPv6 link-local addresses come and go (DAD) on their own.
kernel_state() {
  ip -n "$1" -d -o link show | sed 's/ link\/.*//' | sort
  ip -n "$1" -4 -o addr show | sort
  ip -n "$1" -4 route show table all | sort
  ip netns exec "$1" sh -c 'for f in /proc/sys/net/ipv4/conf/vti*/*; do [ -f "$f" ] && echo "$f=$(cat "$f")"; done' 2>/dev/null
}

# s2s_conf UPDOWN LEFT_SUBNET RIGHT_SUBNET ROUTING [LEFT RIGHT]: the ipsec.conf both gateways (west 192.0.2.1,
# east 192.0.2.2) of the site-to-site scenarios load: IKEv2 PSK, AES-GCM, mark 5, vti01.
s2s_conf() {
  echo "config setup
conn s2s
    left=${5:-192.0.2.1}
    leftid=@west
    leftsubnet=$2
    right=${6:-192.0.2.2}
    rightid=@east
    rightsubnet=$3
    authby=secret
    ikev2=insist
    esp=aes_gcm256
    mark=5/0xffffffff
    vti-interface=vti01
    vti-routing=$4
    leftupdown=$1
    rightupdown=$1"
}

# s2s_hosts: west and east, each with its LAN (10.1.0.0/24, 10.2.0.0/24), on the switch.
s2s_hosts() {
  tb_switch
  tb_host west 192.0.2.1/24 10.1.0.1/24
  tb_host east 192.0.2.2/24 10.2.0.1/24
}

# s2s_start CONF WEST_SECRET [EAST_SECRET]: both plutos with CONF, conn s2s loaded on each.
s2s_start() {
  tb_pluto west "$1" "@west @east : PSK \"$2\""
  tb_pluto east "$1" "@west @east : PSK \"${3:-$2}\""
  tb_add west s2s
  tb_add east s2s
}

# s2s_up: west initiates; both vti01 devices must be up with the right end points and key 5.
s2s_up() {
  tb_up west s2s east
  expect_vti west vti01 192.0.2.1 192.0.2.2 5
  expect_vti east vti01 192.0.2.2 192.0.2.1 5
}

# --- vtid on a host -------------------------------------------------------------------------------
# The products next to $UPDOWN (swift build puts vtid and vtictl there too).
VTID=${VTID:-$(dirname "$UPDOWN")/vtid}
VTICTL=${VTICTL:-$(dirname "$UPDOWN")/vtictl}

# vtid_config HOST [YAML]: vtid.yaml for HOST (reads HOST's ipsec.conf; run and state directories
# under $TB_RUN/HOST; YAML lines added) and the hook.conf that sends the hook's events there.
# Prints the leftupdown= value.
vtid_config() {
  local dir="$TB_RUN/$1"
  mkdir -p "$dir"
  printf 'ipsec_conf: %s\nrun_directory: %s\nstate_directory: %s\n%s\n' "$dir/ipsec.conf" "$dir/vtid" "$dir/vtid-state" "${2:-}" >"$dir/vtid.yaml"
  printf 'vtid = %s\n' "$dir/vtid" >"$dir/hook.conf"
  echo "\"$UPDOWN --config $dir/hook.conf\""
}

# vtid_start HOST: starts vtid in HOST and waits until it answers.
vtid_start() {
  local dir="$TB_RUN/$1" waited=0
  [ -x "$VTID" ] || fail "no vtid next to $UPDOWN (swift build)"
  ip netns exec "$1" "$VTID" --config "$dir/vtid.yaml" >>"$dir/vtid.log" 2>&1 &
  echo $! >"$dir/vtid.pid"
  disown
  until ip netns exec "$1" "$VTICTL" leases --run-directory "$dir/vtid" >/dev/null 2>&1; do
    sleep 0.3; waited=$((waited + 1))
    [ $waited -lt 60 ] || fail "$1: vtid did not answer within 18 s: $(tail -n 5 "$dir/vtid.log")"
  done
  ok "$1: vtid is running"
}

# vtid_stop HOST: SIGTERM, as systemd stops it; waits for the exit.
vtid_stop() {
  local dir="$TB_RUN/$1" pid
  pid=$(cat "$dir/vtid.pid")
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  ok "$1: vtid stopped"
}

# vtictl_json HOST COMMAND...: vtictl's JSON answer from HOST's vtid.
vtictl_json() {
  local host=$1; shift
  ip netns exec "$host" "$VTICTL" "$@" --run-directory "$TB_RUN/$host/vtid" --json
}

# vtictl_on HOST COMMAND...: vtictl talking to HOST's vtid.
# expect_metric HOST NAME VALUE WHY: vtictl metrics on HOST has NAME at VALUE (gauges print as 2.0).
expect_metric() {
  local value
  value=$(vtictl_on "$1" metrics | awk -v n="$2" '$1 == n { print $2 + 0 }')
  [ "$value" = "$3" ] || fail "$1: metric $2 is '$value', expected $3 ($4)"
  ok "$1: metric $2 is $3 ($4)"
}

vtictl_on() {
  local host=$1; shift
  ip netns exec "$host" "$VTICTL" "$@" --run-directory "$TB_RUN/$host/vtid"
}

# expect_lease HOST ADDRESS PEER_ID: vtid's lease table has ADDRESS connected for PEER_ID.
expect_lease() {
  local leases
  leases=$(vtictl_on "$1" leases 2>&1) || fail "$1: vtictl leases failed: $leases"
  awk -v a="$2" -v id="$3" '$1 == a && $3 == id && $5 == "connected" { found = 1 } END { exit !found }' <<<"$leases" \
    || fail "$1: vtid has no connected lease $2 for $3: $leases"
  ok "$1: vtid's lease table has $2 for $3"
}

# rw_server_conf UPDOWN [LEFT POOL LEFTSUBNET CONN]: the road-warrior gateway (192.0.2.2, @east) of the scenarios: pool
# 10.0.1.10-10.0.1.50, shared vti02 with mark 12, routing by the hook.
rw_server_conf() {
  echo "config setup
conn ${5:-rw}
    left=${2:-192.0.2.2}
    leftid=@east
    leftsubnet=${4:-0.0.0.0/0}
    right=%any
    rightid=%any
    rightaddresspool=${3:-10.0.1.10-10.0.1.50}
    leftmodecfgserver=yes
    rightmodecfgclient=yes
    narrowing=yes
    authby=secret
    ikev2=insist
    esp=aes_gcm256
    mark=12/0xffffffff
    vti-interface=vti02
    vti-routing=yes
    vti-shared=yes
    leftupdown=$1
    rightupdown=$1"
}

# rw_client_conf ADDRESS NAME UPDOWN [RIGHT RIGHTSUBNET CONN RIGHTID]: a road-warrior client of rw_server_conf's gateway.
rw_client_conf() {
  echo "config setup
conn ${6:-rw}
    left=$1
    leftid=@$2
    leftmodecfgclient=yes
    right=${4:-192.0.2.2}
    rightid=${7:-@east}
    rightsubnet=${5:-0.0.0.0/0}
    rightmodecfgserver=yes
    narrowing=yes
    authby=secret
    ikev2=insist
    esp=aes_gcm256
    leftupdown=$3
    rightupdown=$3"
}

# forget_pool_address HOST [POOL_RE]: removes the pool addresses a client kept from earlier tunnels (like the
# stock script, the hook leaves a policy-based conn's source address in place). POOL_RE: an awk
# pattern for the pool's addresses (10.0.1.x unless given).
forget_pool_address() {
  local address
  for address in $(ip -n "$1" -4 -o addr show | awk "/inet ${2:-10\\.0\\.1\\.}/ { print \$4 \",\" \$2 }"); do
    ip -n "$1" addr del "${address%,*}" dev "${address#*,}"
  done
}

# pool_address HOST [POOL_RE]: the address HOST got from the gateway's pool.
pool_address() { ip -n "$1" -4 addr show | awk "/inet ${2:-10\\.0\\.1\\.}/ { sub(/\\/.*/, \"\", \$2); print \$2; exit }"; }

# v6host NAME UPLINK [LAN]: a host on the switch with IPv6 addresses only (UPLINK on eth0, LAN on
# a dummy lan0; /64 each).
v6host() {
  local name=$1 uplink=$2 lan=${3:-}
  ip netns add "$name"
  ip link add eth0 netns "$name" type veth peer name "p-$name" netns sw
  ip -n sw link set "p-$name" master br0 up
  ip -n "$name" link set lo up
  # nodad: usable at once (duplicate address detection would hold the addresses tentative).
  ip -n "$name" -6 addr add "$uplink/64" dev eth0 nodad
  ip -n "$name" link set eth0 up
  if [ -n "$lan" ]; then
    ip -n "$name" link add lan0 type dummy
    ip -n "$name" -6 addr add "$lan/64" dev lan0 nodad
    ip -n "$name" link set lan0 up
  fi
  TB_HOSTS="$TB_HOSTS $name"
  mkdir -p "$TB_RUN/$name"
}
# rw6_server_conf UPDOWN and rw6_client_conf ADDRESS ID UPDOWN: road warriors over IPv6, the
# gateway (2001:db8::2, @east) with an IPv6 pool on a shared vti6 (mark 12, vti02). 4.10 takes an
# IPv6 pool only as a subnet.
rw6_server_conf() { rw_server_conf "$1" 2001:db8::2 2001:db8:1::/120 ::/0 rw6; }
rw6_client_conf() { rw_client_conf "$1" "$2" "$3" 2001:db8::2 ::/0 rw6; }
pool6_address() { ip -n "$1" -6 addr show | awk '/inet6 2001:db8:1::/ { sub(/\/.*/, "", $2); print $2; exit }'; }

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds and prints how long that
# took; returns 1 after SECONDS. Use as: took=$(wait_for 10 cmd) || fail "what did not happen".
wait_for() {
  local limit=$1 start=$EPOCHREALTIME
  shift
  until "$@" >/dev/null 2>&1; do
    sleep 0.2
    awk -v s="$start" -v e="$EPOCHREALTIME" -v l="$limit" 'BEGIN { exit !(e - s > l) }' && return 1
  done
  awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }'
}

# --- XFRM interfaces (ipsec-interface=; qemu kernels only, UML has none) ----------------------------
# xfrmi_seen HOST DEV WHEN: says whether DEV exists in HOST at this point, and if so its if_id,
# underlying device, state and IPv4 addresses, as a "seen" line (an observation, not a check).
# wait_sas_gone HOST [ADDRESS]: waits (10 s at most) until HOST has no IPsec SA (none with ADDRESS as
# an end, if given): pluto has torn the Child SA down, so what it does with a device has been done.
wait_sas_gone() {
  wait_for 10 sh -c "! ip -n $1 xfrm state | grep -q '${2:-src}'" >/dev/null \
    || fail "$1: SAs ${2:+with $2 }still there 10 s after the teardown"
}

xfrmi_seen() {
  local host=$1 dev=$2 when=$3 shown
  if ! shown=$(ip -n "$host" -d link show "$dev" 2>/dev/null); then
    echo "seen - $TB_SCENARIO: $host: $when: $dev absent"
    return 0
  fi
  local if_id link state addresses
  if_id=$(sed -n 's/.* xfrm if_id \(0x[0-9a-f]*\).*/\1/p' <<<"$shown")
  link=$(sed -n "1s/^[0-9]*: $dev@\([^:]*\):.*/\1/p" <<<"$shown")
  state=$(grep -q "[<,]UP[,>]" <<<"${shown%%$'\n'*}" && echo up || echo down)
  addresses=$(ip -n "$host" -4 -o addr show dev "$dev" | awk '{ printf "%s%s", sep, $4; sep = "," }')
  echo "seen - $TB_SCENARIO: $host: $when: $dev present, ${if_id:+if_id $if_id, }link ${link:-none}, $state, addresses ${addresses:-none}"
}

# expect_xfrmi HOST DEV IF_ID: DEV is an XFRM interface with this if_id (decimal) and is up.
expect_xfrmi() {
  local shown
  shown=$(ip -n "$1" -d link show "$2" 2>/dev/null) || fail "$1: XFRM interface $2 does not exist"
  grep -q "xfrm if_id $(printf '0x%x' "$3")" <<<"$shown" || fail "$1: $2 is not an XFRM interface with if_id $3: $shown"
  grep -q "[<,]UP[,>]" <<<"${shown%%$'\n'*}" || fail "$1: $2 is not up"
  ok "$1: $2 is an XFRM interface with if_id $3, up"
}

# xfrmi_policies HOST: how many XFRM policies and SAs in HOST carry an if_id, "POLICIES SAS".
xfrmi_policies() {
  echo "$(ip -n "$1" xfrm policy | grep -c 'if_id') $(ip -n "$1" xfrm state | grep -c 'if_id')"
}

# require_xfrmi: fails unless this kernel can make XFRM interfaces (Debian's stock kernel under
# qemu can; UML cannot).
require_xfrmi() {
  ip link add tb-probe type xfrm if_id 99 2>/dev/null && ip link del tb-probe \
    || fail "this kernel cannot make XFRM interfaces (Scripts/testbed --kernel debian12)"
}

# xfrmi_s2s_conf UPDOWN N: s2s_conf's site-to-site conn on an XFRM interface (ipsec-interface=N)
# instead of vti01 and mark 5.
xfrmi_s2s_conf() {
  s2s_conf "$1" 10.1.0.0/24 10.2.0.0/24 yes | sed "/^    mark=/d; /^    vti-routing=/d; s/^    vti-interface=.*/    ipsec-interface=$2/"
}

# xfrmi_rw_conn CONN N POOL CLIENT UPDOWN: a road-warrior conn of 192.0.2.2 (@east) on ipsec-interface=N
# for the client @CLIENT, handing out POOL: several such conns share the gateway's one address.
xfrmi_rw_conn() {
  rw_server_conf "$5" 192.0.2.2 "$3" 0.0.0.0/0 "$1" | sed "1d; /^    mark=/d; /^    vti-routing=/d; /^    vti-shared=/d;
    s/^    vti-interface=.*/    ipsec-interface=$2/; s/^    rightid=.*/    rightid=@$4/"
}

# --- installed as on a gateway, under systemd (Scripts/testbed scenario --systemd ...) ---------------
# tb_writable_system: /usr, /etc and /var become writable for this boot, as overlays (on tmpfs) over
# the read-only root, so that a package or a unit can be installed as on a gateway; nothing reaches
# the host. Needs systemd as the guest's PID 1. Once per boot.
tb_writable_system() {
  local dir base=/run/tb-system
  [ "$(cat /proc/1/comm)" = systemd ] || fail "this scenario needs systemd as PID 1: Scripts/testbed scenario --systemd $TB_SCENARIO"
  [ -e "$base/.ready" ] && return 0
  mkdir -p "$base"
  mount -t tmpfs tb-system "$base"
  for dir in usr etc var; do
    mkdir -p "$base/$dir/upper" "$base/$dir/work"
    mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$base/$dir/upper,workdir=$base/$dir/work" "/$dir" \
      || fail "cannot make /$dir writable (overlay on the read-only root)"
  done
  # The journal, for the units' logs (journalctl -u vtid): testbed.target starts nothing else.
  systemctl start systemd-journald.socket systemd-journald.service >/dev/null 2>&1 || note "journald did not start: no unit logs"
  touch "$base/.ready"
}

# kernel_state_here: kernel_state of the guest's own namespace (where systemd's units run).
kernel_state_here() {
  ip -d -o link show | sed 's/ link\/.*//' | sort
  ip -4 -o addr show | sort
  ip -4 route show table all | sort
  for f in /proc/sys/net/ipv4/conf/vti*/*; do [ -f "$f" ] && echo "$f=$(cat "$f")"; done 2>/dev/null
}

# unit_pid UNIT: the unit's main process, or 0.
unit_pid() { systemctl show -p MainPID --value "$1"; }

# expect_unit_active UNIT WHY
expect_unit_active() {
  local state
  state=$(systemctl is-active "$1" 2>&1) || fail "$1 is $state, not active ($2): $(journalctl -u "$1" --no-pager -n 15 2>&1 | tail -n 15)"
  ok "$1 is active ($2)"
}

# capability_names MASK: the capability names in a hex mask (/proc/PID/status), sorted, lower case.
capability_names() { capsh --decode="$1" | sed 's/^.*=//' | tr ',' '\n' | tr 'A-Z' 'a-z' | sort | tr '\n' ' '; }

# unit_property UNIT_FILE KEY: the value of KEY= in a unit file (the last one, as systemd reads it).
unit_property() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

# expect_sandbox PID UNIT_FILE: the process runs with the bounding set, no-new-privileges, seccomp
# filter and read-only file system that the unit file asks for (read from the file, not repeated).
expect_sandbox() {
  local pid=$1 unit=$2 wanted got
  wanted=$(unit_property "$unit" CapabilityBoundingSet | tr ' ' '\n' | tr 'A-Z' 'a-z' | sort | tr '\n' ' ')
  got=$(capability_names "$(awk '/^CapBnd:/ { print $2 }' "/proc/$pid/status")")
  [ -n "$wanted" ] && [ "$got" = "$wanted" ] || fail "vtid's bounding set is '$got', the unit asks for '$wanted'"
  ok "vtid's capability bounding set is the unit's: $got"
  [ "$(unit_property "$unit" NoNewPrivileges)" = yes ] && grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status" \
    || fail "vtid runs without no_new_privs (unit: NoNewPrivileges=$(unit_property "$unit" NoNewPrivileges))"
  [ -n "$(unit_property "$unit" SystemCallFilter)" ] && grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status" \
    || fail "vtid runs without a seccomp filter (unit: SystemCallFilter=$(unit_property "$unit" SystemCallFilter))"
  ok "vtid runs with no_new_privs and a seccomp filter"
  if [ "$(unit_property "$unit" ProtectSystem)" = strict ]; then
    nsenter -t "$pid" -m sh -c 'touch /usr/.tb-probe || touch /etc/.tb-probe' 2>/dev/null \
      && fail "vtid's mount namespace lets it write /usr or /etc despite ProtectSystem=strict"
    nsenter -t "$pid" -m sh -c 'touch /var/lib/vtid/.tb-probe && rm /var/lib/vtid/.tb-probe && touch /run/vtid/.tb-probe && rm /run/vtid/.tb-probe' \
      || fail "vtid cannot write its own state and run directories"
    ok "vtid sees /usr and /etc read-only, /var/lib/vtid and /run/vtid writable (ProtectSystem=strict)"
  fi
}

# --- Past one gateway: a site LAN with a BGP router (issue 20; scenarios vtid-bgp-*) -----------------
# The "internet" is tb_switch's bridge; internet hosts sit in different documentation ranges, so each
# gets an on-link default route (everyone answers ARP on the one bridge). The site LAN is a second
# bridge in namespace lansw, where the gateways' eth1 and the router meet; a LAN host hangs off
# the router on its own veth (another subnet, reached only through the router).

# tb_internet_host NAME ADDRESS/LEN [LAN_CIDR]: tb_host with an on-link default route on eth0.
tb_internet_host() {
  tb_host "$@"
  ip -n "$1" route add default dev eth0
}

# tb_lan_switch: the site LAN's bridge (namespace lansw).
tb_lan_switch() {
  ip netns add lansw
  ip -n lansw link add br0 type bridge
  ip -n lansw link set br0 up
}

# tb_lan_port HOST ADDRESS/LEN: HOST's eth1 on the site LAN. Creates HOST if it does not exist (the
# router has no internet side).
tb_lan_port() {
  local name=$1
  if ! grep -qw "$name" <<<"$(ip netns list)"; then
    ip netns add "$name"
    ip -n "$name" link set lo up
    TB_HOSTS="$TB_HOSTS $name"
    mkdir -p "$TB_RUN/$name"
  fi
  ip link add eth1 netns "$name" type veth peer name "l-$name" netns lansw
  ip -n lansw link set "l-$name" master br0 up
  ip -n "$name" addr add "$2" dev eth1
  ip -n "$name" link set eth1 up
}

# tb_lan_host NAME ROUTER ROUTER_ADDRESS/LEN HOST_ADDRESS/LEN: a host behind ROUTER on a veth of its
# own (ROUTER's eth2, NAME's eth0), default route via the router, which forwards.
tb_lan_host() {
  local name=$1 router=$2
  ip netns add "$name"
  ip -n "$name" link set lo up
  ip link add eth0 netns "$name" type veth peer name eth2 netns "$router"
  ip -n "$router" addr add "$3" dev eth2
  ip -n "$router" link set eth2 up
  ip -n "$name" addr add "$4" dev eth0
  ip -n "$name" link set eth0 up
  ip -n "$name" route add default via "${3%/*}"
  ip netns exec "$router" sysctl -qw net.ipv4.ip_forward=1
  TB_HOSTS="$TB_HOSTS $name"
  mkdir -p "$TB_RUN/$name"
}

# bird_start HOST CONF_FILE: BIRD 2 in HOST with CONF_FILE (copied, with a log file of its own
# added), its own control socket $TB_RUN/HOST/bird.ctl; waits until it answers.
bird_start() {
  local host=$1 dir="$TB_RUN/$1" said waited=0
  command -v bird >/dev/null || fail "bird is not installed (Debian package bird2: Scripts/install-packages)"
  { printf 'log "%s" all;\n' "$dir/bird.log"; cat "$2"; } >"$dir/bird.conf"
  said=$(bird -p -c "$dir/bird.conf" 2>&1) || fail "$host: BIRD rejects $2: $said"
  ip netns exec "$host" bird -c "$dir/bird.conf" -s "$dir/bird.ctl" -P "$dir/bird.pid" 2>>"$dir/bird.log" \
    || fail "$host: bird did not start: $(tail -n 3 "$dir/bird.log")"
  until birdc -s "$dir/bird.ctl" show status >/dev/null 2>&1; do
    sleep 0.2; waited=$((waited + 1))
    [ $waited -lt 50 ] || fail "$host: BIRD did not answer on $dir/bird.ctl within 10 s"
  done
  ok "$host: BIRD is running ($2)"
}

# birdc_on HOST COMMAND...: birdc on HOST's BIRD.
birdc_on() { local host=$1; shift; birdc -s "$TB_RUN/$host/bird.ctl" "$@"; }

# bgp_established HOST PROTOCOL: HOST's BGP session PROTOCOL is up.
bgp_established() { grep -q Established <<<"$(birdc_on "$1" show protocols "$2")"; }

# expect_bgp_up HOST PROTOCOL...: waits (30 s at most) for each session.
expect_bgp_up() {
  local host=$1 protocol took
  shift
  for protocol in "$@"; do
    took=$(wait_for 30 bgp_established "$host" "$protocol") \
      || fail "$host: BGP session $protocol not established within 30 s: $(birdc_on "$host" show protocols all "$protocol" | tr '\n' ' ')"
    ok "$host: BGP session $protocol established (${took} s)"
  done
}

# router_route_via HOST PREFIX NEXT_HOP: HOST's kernel routes PREFIX via NEXT_HOP, installed by BIRD.
router_route_via() { grep -q "via $3 .*proto bird" <<<"$(ip -n "$1" route show "$2")"; }
# router_lacks HOST PREFIX: HOST's kernel has no route for exactly PREFIX.
router_lacks() { [ -z "$(ip -n "$1" route show "$2")" ]; }

# wait_router_route HOST PREFIX NEXT_HOP SECONDS WHAT: waits for the route; prints the seconds it took.
wait_router_route() {
  wait_for "$4" router_route_via "$1" "$2" "$3" \
    || fail "$1: no route $2 via $3 from BGP within $4 s ($5): $(ip -n "$1" route show "$2" | tr '\n' ';') BIRD: $(birdc_on "$1" show route "$2" all | tr '\n' ' ')"
}

# wait_router_lacks HOST PREFIX SECONDS WHAT: waits until the route is withdrawn; prints the seconds.
wait_router_lacks() {
  wait_for "$3" router_lacks "$1" "$2" \
    || fail "$1: route $2 still there $3 s later ($4): $(ip -n "$1" route show "$2" | tr '\n' ';')"
}

# routes_not_ours HOST [PROTOCOL]: every IPv4 route of HOST in every table that is not of PROTOCOL
# (157), sorted: what vtid must never touch.
routes_not_ours() { ip -n "$1" -4 route show table all | grep -v "proto ${2:-157}" | sort; }

# bgp_site SECRET: the Profiles/bgp-gateways deployment, as its files say: gw1 (198.51.100.1,
# 10.3.0.1) and gw2 (198.51.100.2, 10.3.0.2) with pluto, vtid and BIRD; the LAN router (10.3.0.254)
# with BIRD and BGP to both; a LAN host (10.3.4.10) behind the router. The profile's files are used
# as they are but for three lines of ipsec.conf: the hook's path (with the test bed's hook.conf) and
# PSK instead of certificates for the road warriors (the test bed has no CA). The gateways reach the
# LAN host's subnet through the router by a static route, as a site's LAN routing would. Sets
# BGP_PROFILE. Conns are loaded, not started. PSKs: @gwN with @road1..3 and @branch.example.com.
bgp_site() {
  local secret=$1 n updown
  BGP_PROFILE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/Profiles/bgp-gateways
  [ -f "$BGP_PROFILE/gw1/ipsec.conf" ] || fail "no profile at $BGP_PROFILE"
  tb_switch
  tb_lan_switch
  for n in 1 2; do
    tb_internet_host gw$n 198.51.100.$n/24
    tb_lan_port gw$n 10.3.0.$n/24
    ip -n gw$n route add 10.3.0.0/16 via 10.3.0.254
  done
  tb_lan_port router 10.3.0.254/24
  tb_lan_host lanhost router 10.3.4.1/24 10.3.4.10/24
  for n in 1 2; do
    updown=$(vtid_config gw$n "$(cat "$BGP_PROFILE/gw$n/vtid.yaml")")
    tb_pluto gw$n "$(sed -e "s#^    leftupdown=.*#    leftupdown=$updown#; s#^    rightupdown=.*#    rightupdown=$updown#" \
                         -e 's#^    leftcert=.*#    authby=secret#; s#^    rightid=%fromcert#    rightid=%any#' "$BGP_PROFILE/gw$n/ipsec.conf")" \
      "@gw$n.example.com @road1 : PSK \"$secret\"
@gw$n.example.com @road2 : PSK \"$secret\"
@gw$n.example.com @road3 : PSK \"$secret\"
@gw$n.example.com @branch.example.com : PSK \"$secret\""
    vtid_start gw$n
    bird_start gw$n "$BGP_PROFILE/gw$n/bird.conf"
    tb_add gw$n rw
    tb_add gw$n branch
  done
  bird_start router "$BGP_PROFILE/router/bird.conf"
  expect_bgp_up router gw1 gw2
}

# bgp_exports_match HOST: HOST's BIRD announces to the router exactly HOST's routes of protocol 157.
bgp_exports_match() {
  local exported kernel
  exported=$(birdc_on "$1" show route export lan_router | awk '$1 ~ /^[0-9]/ { print $1 }' | sort | tr '\n' ' ')
  kernel=$(ip -n "$1" route show proto 157 | awk '{ print ($1 ~ /\//) ? $1 : $1 "/32" }' | sort | tr '\n' ' ')
  [ "$exported" = "$kernel" ] || fail "$1: BIRD announces '$exported' but the kernel's routes of protocol 157 are '$kernel'"
  ok "$1: BIRD announces exactly the routes of protocol 157: ${exported:-none}"
}
