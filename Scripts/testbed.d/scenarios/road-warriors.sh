# One gateway with an address pool on a shared VTI (vti-shared=yes, vti-routing=yes, mark 12) and
# two road-warrior clients with mode config; each reaches the gateway's LAN from its pool address;
# one disconnects and the other keeps working.
updown=$(tb_updown)
tb_switch
tb_host gw 192.0.2.2/24 10.3.0.1/24
tb_host road1 192.0.2.11/24
tb_host road2 192.0.2.12/24
server=$(rw_server_conf "$updown")
client() { rw_client_conf "$1" "$2" "$updown"; }
secrets='@east @road1 : PSK "testbed-road-warrior-secret"
@east @road2 : PSK "testbed-road-warrior-secret"'
tb_pluto gw "$server" "$secrets"
tb_pluto road1 "$(client 192.0.2.11 road1)" '@road1 @east : PSK "testbed-road-warrior-secret"'
tb_pluto road2 "$(client 192.0.2.12 road2)" '@road2 @east : PSK "testbed-road-warrior-secret"'
tb_add gw rw
tb_add road1 rw
tb_add road2 rw
tb_up road1 rw gw
tb_up road2 rw gw
expect_vti gw vti02 192.0.2.2 0.0.0.0 12
pool1=$(ip -n road1 -4 addr show | awk '/inet 10\.0\.1\./ { sub(/\/.*/, "", $2); print $2; exit }')
pool2=$(ip -n road2 -4 addr show | awk '/inet 10\.0\.1\./ { sub(/\/.*/, "", $2); print $2; exit }')
[ -n "$pool1" ] || fail "road1 got no address from the pool 10.0.1.10-10.0.1.50"
[ -n "$pool2" ] || fail "road2 got no address from the pool 10.0.1.10-10.0.1.50"
[ "$pool1" != "$pool2" ] || fail "road1 and road2 got the same pool address $pool1"
ok "clients got pool addresses $pool1 and $pool2"
expect_route gw "$pool1" vti02
expect_route gw "$pool2" vti02
before=$(sa_counters gw)
tx=$(dev_tx_packets gw vti02)
expect_ping road1 "$pool1" 10.3.0.1 "road1 to the gateway's LAN"
expect_ping road2 "$pool2" 10.3.0.1 "road2 to the gateway's LAN"
expect_sa_counters_moved gw "$before"
expect_device_counters_moved gw vti02 "$tx"
tb_down road1 rw
sleep 1
expect_ping road2 "$pool2" 10.3.0.1 "road2 after road1 disconnected"
if grep -q vti02 <<<"$(ip -n gw route show "$pool1")"; then
  note "gw: the /32 route of road1 ($pool1) is still there after it disconnected (the updown under test left it)"
else
  ok "gw: the /32 route of road1 ($pool1) is gone"
fi
