# IPv6 road warriors with vti-updown on every host (issue 19): a gateway with an IPv6 pool on a
# shared vti6 device (vti-shared=yes, vti-routing=yes, mark 12) and two clients over IPv6. Each
# client's /128 is routed into the device with our protocol; one client leaves and exactly its
# route goes while the other keeps working. Documentation prefixes (2001:db8::/32) throughout: a
# client without a VTI routes its peer's ::/0 as 2000::/3, as the stock script does.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
updown=$(tb_updown)
tb_switch
v6host gw 2001:db8::2 2001:db8:3::1
v6host road1 2001:db8::11
v6host road2 2001:db8::12
server=$(rw6_server_conf "$updown")
client() { rw6_client_conf "$1" "$2" "$updown"; }
secrets='@east @road1 : PSK "testbed-ipv6-road-secret"
@east @road2 : PSK "testbed-ipv6-road-secret"'
tb_pluto gw "$server" "$secrets"
tb_pluto road1 "$(client 2001:db8::11 road1)" '@road1 @east : PSK "testbed-ipv6-road-secret"'
tb_pluto road2 "$(client 2001:db8::12 road2)" '@road2 @east : PSK "testbed-ipv6-road-secret"'
tb_add gw rw6
tb_add road1 rw6
tb_add road2 rw6
tb_up road1 rw6 gw
tb_up road2 rw6 gw
shown=$(ip -n gw -d link show vti02 2>/dev/null) || fail "gw: vti02 does not exist"
grep -q "vti6 remote any local 2001:db8::2" <<<"$shown" || fail "gw: vti02 is not the shared vti6 device wanted: $(echo "$shown" | grep -i vti)"
grep -q "ikey 0.0.0.12 okey 0.0.0.12" <<<"$shown" || fail "gw: vti02 does not have the marks as keys"
ok "gw: vti02 is a shared vti6 device (remote any, local 2001:db8::2, keys 12)"

pool1=$(pool6_address road1)
pool2=$(pool6_address road2)
[ -n "$pool1" ] && [ -n "$pool2" ] || fail "a client got no address from the pool 2001:db8:1::/120 (road1: ${pool1:-none}, road2: ${pool2:-none})"
[ "$pool1" != "$pool2" ] || fail "road1 and road2 got the same pool address $pool1"
ok "clients got pool addresses $pool1 and $pool2"
for pool in "$pool1" "$pool2"; do
  shown=$(ip -n gw -6 route show "$pool/128")
  grep -q "dev vti02 proto 157" <<<"$shown" || fail "gw: no route $pool/128 dev vti02 proto 157 (IPv6 routes: $(ip -n gw -6 route | tr '\n' ';'))"
  ok "gw: route $pool/128 dev vti02 proto 157"
done
# Shared device: the most expensive common suite with NAT-T, over IPv6: 1500-40-8-8-16-32 = 1396,
# down to a multiple of 16, minus 2: 1390 (above IPv6's minimum of 1280).
expect_mtu gw vti02 1390 "shared device over IPv6: worst common suite with NAT-T"
expect_sysctl gw net.ipv6.conf.vti02.forwarding 1
expect_sysctl gw net.ipv6.conf.all.forwarding 1
ping1() { ip netns exec "$1" ping -6 -c 2 -i 0.3 -W 2 -I "$2" 2001:db8:3::1 >/dev/null 2>&1; }
before=$(sa_counters gw)
ping1 road1 "$pool1" || fail "road1: $pool1 does not reach 2001:db8:3::1 (the gateway's LAN)"
ok "road1: $pool1 reaches 2001:db8:3::1"
ping1 road2 "$pool2" || fail "road2: $pool2 does not reach 2001:db8:3::1"
ok "road2: $pool2 reaches 2001:db8:3::1"
expect_sa_counters_moved gw "$before"
tb_down road1 rw6
wait_for 10 sh -c "[ -z \"\$(ip -n gw -6 route show $pool1/128)\" ]" >/dev/null || fail "gw: road1's route $pool1/128 still there 10 s after it left"
ok "gw: road1's route $pool1/128 is gone"
grep -q "dev vti02 proto 157" <<<"$(ip -n gw -6 route show "$pool2/128")" || fail "gw: road2's route went with road1's"
ok "gw: road2's route $pool2/128 stays"
ping1 road2 "$pool2" || fail "road2: no longer reaches the LAN after road1 left"
ok "road2: $pool2 still reaches 2001:db8:3::1 after road1 left"
