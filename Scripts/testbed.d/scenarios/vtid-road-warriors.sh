# Road warriors through vtid: the gateway runs vtid and its hook hands every event to it. Two
# clients connect: routes, device, MTU and sysctls as with the hook alone, and vtid's lease table
# shows both. vtid stops; a third client connects: the hook applies the event itself. vtid starts
# and knows that client; a restart keeps the lease table; vtictl status shows the clients' bytes.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
tb_switch
tb_host gw 192.0.2.2/24 10.3.0.1/24
tb_host road1 192.0.2.11/24
tb_host road2 192.0.2.12/24
tb_host road3 192.0.2.13/24
gw_updown=$(vtid_config gw)
server=$(rw_server_conf "$gw_updown")
secret='PSK "testbed-vtid-road-warrior-secret"'
tb_pluto gw "$server" "@east @road1 : $secret
@east @road2 : $secret
@east @road3 : $secret"
vtid_start gw
# vtictl check on the real thing: this kernel has VTI and ESP, the files are right.
checked=$(ip netns exec gw "$VTICTL" check --config "$TB_RUN/gw/vtid.yaml" 2>&1) || fail "gw: vtictl check failed: $checked"
# (Warnings may come from the host's own sysctl files, which the guest shares; errors may not.)
[[ "$checked" == *"1 route-based conn checked: 0 errors, "* ]] || fail "gw: vtictl check found errors: $checked"
ok "gw: vtictl check: $checked"
# The same conn with libreswan's stock updown: vtid would hear nothing, so for a conn it manages
# that is an error, not a warning.
sed 's#leftupdown=.*#leftupdown=/usr/libexec/ipsec/_updown#; s#rightupdown=.*#rightupdown=/usr/libexec/ipsec/_updown#' \
  "$TB_RUN/gw/ipsec.conf" >"$TB_RUN/gw/stock.conf"
sed "s#$TB_RUN/gw/ipsec.conf#$TB_RUN/gw/stock.conf#" "$TB_RUN/gw/vtid.yaml" >"$TB_RUN/gw/stock.yaml"
stock=$(ip netns exec gw "$VTICTL" check --config "$TB_RUN/gw/stock.yaml" 2>&1) && fail "gw: vtictl check passed a managed conn with the stock updown: $stock"
grep -q "error" <<<"$stock" && grep -q "_updown" <<<"$stock" || fail "gw: vtictl check did not name the stock updown as an error: $stock"
ok "gw: vtictl check calls the stock updown on a conn vtid manages an error"
for n in 1 2 3; do
  tb_pluto road$n "$(rw_client_conf 192.0.2.1$n road$n "$UPDOWN")" "@road$n @east : $secret"
done
for host in gw road1 road2 road3; do tb_add $host rw; done
tb_up road1 rw gw
tb_up road2 rw gw
pool1=$(pool_address road1) pool2=$(pool_address road2)
[ -n "$pool1" ] && [ -n "$pool2" ] || fail "the clients got no pool addresses ($pool1, $pool2)"
expect_vti gw vti02 192.0.2.2 0.0.0.0 12
expect_route gw "$pool1" vti02
expect_route_protocol gw "$pool1" 157
expect_route gw "$pool2" vti02
expect_mtu gw vti02 1406 "shared device: worst common suite with NAT-T"
expect_sysctl gw net.ipv4.conf.vti02.disable_policy 1
expect_sysctl gw net.ipv4.conf.vti02.rp_filter 2
expect_sysctl gw net.ipv4.ip_forward 1
expect_ping road1 "$pool1" 10.3.0.1 "road1 to the gateway's LAN"
expect_ping road2 "$pool2" 10.3.0.1 "road2 to the gateway's LAN"
expect_lease gw "$pool1" @road1
expect_lease gw "$pool2" @road2
applied=$(vtictl_on gw events | awk '$5 == "vtid" && $6 == "applied"' | wc -l)
[ "$applied" -ge 4 ] || fail "gw: vtid applied only $applied events: $(vtictl_on gw events)"
ok "gw: vtid applied the hook's events ($applied)"
# Metrics are computed when read: right, without anyone having asked for the status first.
expect_metric gw vtid_clients_connected 2 "two clients up"
expect_metric gw vtid_tunnels_up 2 "two clients' SAs in the kernel"
# A converged gateway: the dry run has nothing to say, as the real pass had nothing to do.
vtictl_on gw reconcile >/dev/null || fail "gw: vtictl reconcile failed"
dry=$(vtictl_on gw reconcile --dry-run)
[ "$dry" = "nothing to repair: the kernel holds what vtid wants" ] || fail "gw: a dry run on a converged gateway printed: $dry"
ok "gw: vtictl reconcile --dry-run on the converged gateway: $dry"

# vtictl status: both clients with their pool addresses and the bytes their SAs carried.
status=$(vtictl_on gw status)
echo "$status" | sed 's/^/    /'
for n in 1 2; do
  address=$(eval echo "\$pool$n")
  awk -v a="$address" -v id="@road$n" '$1 == a && $3 == id && $5 == "connected" && $7 > 0 && $8 > 0 { found = 1 } END { exit !found }' <<<"$status" \
    || fail "gw: vtictl status does not show road$n at $address with bytes in and out"
  ok "gw: vtictl status shows road$n at $address with non-zero byte counters"
done
# The conn's line: both clients as peers, and its SAs' counters.
traffic=$(vtictl_json gw status | grep -o '"traffic":{[^}]*}') || fail "gw: vtictl status --json has no traffic for rw"
grep -q '"peers":\["192.0.2.11","192.0.2.12"\]' <<<"$traffic" || fail "gw: conn rw's peers are not the two clients: $traffic"
grep -Eq '"inBytes":[1-9][0-9]*,"outBytes":[1-9]' <<<"$traffic" || fail "gw: conn rw's SAs carried no bytes: $traffic"
ok "gw: vtictl status shows conn rw with both clients as peers and non-zero SA counters"
# What a BGP daemon would announce: both clients' routes in the kernel with vtid's protocol.
for n in 1 2; do
  address=$(eval echo "\$pool$n")
  awk -v r="$address/32" '$1 == r && $2 == "vti02" && $NF == "yes" { found = 1 } END { exit !found }' <<<"$status" \
    || fail "gw: vtictl status does not show $address/32 on vti02 as announced"
done
ok "gw: vtictl status shows both clients' routes announced (in the kernel with protocol 157)"
# The same SAs as ipsec_exporter's families, labelled with the conn.
metrics=$(vtictl_on gw metrics)
grep -q '^ipsec_status{tunnel="rw"} 0.0$' <<<"$metrics" && grep -Eq '^ipsec_in_bytes\{tunnel="rw"\} [1-9]' <<<"$metrics" \
  && grep -Eq '^ipsec_out_packets\{tunnel="rw"\} [1-9]' <<<"$metrics" \
  || fail "gw: no ipsec_* metrics for conn rw with traffic: $(grep '^ipsec_' <<<"$metrics")"
ok "gw: metrics ipsec_status{tunnel=\"rw\"} 0 (SAs installed), ipsec_in_bytes and ipsec_out_packets non-zero"

# vtid stops (as systemd stops it): tunnels stay, and a new client still gets its route.
vtid_stop gw
expect_ping road1 "$pool1" 10.3.0.1 "road1 with vtid stopped"
tb_up road3 rw gw
pool3=$(pool_address road3)
[ -n "$pool3" ] || fail "road3 got no pool address"
expect_route gw "$pool3" vti02
expect_ping road3 "$pool3" 10.3.0.1 "road3, connected while vtid was down (the hook's fallback)"
spooled=$(ls "$TB_RUN/gw/vtid/spool" | wc -l)
[ "$spooled" -ge 1 ] || fail "gw: the hook left nothing in vtid's spool"
ok "gw: the hook left $spooled events in vtid's spool"

vtid_start gw
expect_lease gw "$pool3" @road3
by_hook=$(vtictl_on gw events | awk '$5 == "hook" && $6 == "applied"' | wc -l)
[ "$by_hook" -ge 1 ] || fail "gw: vtid recorded no events applied by the hook: $(vtictl_on gw events)"
ok "gw: vtid knows road3 from the hook's spool ($by_hook events applied by the hook)"
before=$(vtictl_on gw leases --json | grep -v lastSeen)
vtid_stop gw
vtid_start gw
after=$(vtictl_on gw leases --json | grep -v lastSeen)
[ "$before" = "$after" ] || fail "gw: the lease table changed across a restart: $before -> $after"
for n in 1 2 3; do expect_lease gw "$(eval echo "\$pool$n")" "@road$n"; done
ok "gw: a restart keeps the lease table"

# road1 leaves through vtid: its lease is kept as gone, its route is removed, the others stay.
tb_down road1 rw
sleep 1
expect_no_route gw "$pool1" "road1 disconnected"
expect_ping road2 "$pool2" 10.3.0.1 "road2 after road1 left"
state=$(vtictl_on gw leases | awk -v a="$pool1" '$1 == a { print $5 }')
[ "$state" = gone ] || fail "gw: road1's lease is '$state', expected gone"
ok "gw: road1's lease is kept as gone"
expect_metric gw vtid_clients_connected 2 "road1 left, road2 and road3 up"
expect_metric gw vtid_tunnels_up 2 "road1's SAs gone"
