# IPv6 road warriors through vtid (issue 19): the gateway of hook-ipv6-road-warriors runs vtid. Two
# clients connect over IPv6: vtid applies their events (a /128 each into the shared vti6), its
# lease table and `vtictl status` show their IPv6 addresses, and its reconcile restores an IPv6
# route deleted behind its back and the vti6 device itself (with its IPv6 sysctls and MTU).
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
tb_switch
v6host gw 2001:db8::2 2001:db8:3::1
v6host road1 2001:db8::11
v6host road2 2001:db8::12
gw_updown=$(vtid_config gw)
secret='PSK "testbed-vtid-ipv6-secret"'
tb_pluto gw "$(rw6_server_conf "$gw_updown")" "@east @road1 : $secret
@east @road2 : $secret"
vtid_start gw
for n in 1 2; do tb_pluto road$n "$(rw6_client_conf 2001:db8::1$n road$n "$UPDOWN")" "@road$n @east : $secret"; done
for host in gw road1 road2; do tb_add $host rw6; done
tb_up road1 rw6 gw
tb_up road2 rw6 gw
pool1=$(pool6_address road1) pool2=$(pool6_address road2)
[ -n "$pool1" ] && [ -n "$pool2" ] || fail "the clients got no IPv6 pool addresses (${pool1:-none}, ${pool2:-none})"
for pool in "$pool1" "$pool2"; do
  grep -q "dev vti02 proto 157" <<<"$(ip -n gw -6 route show "$pool/128")" || fail "gw: no route $pool/128 dev vti02 proto 157 (vtid applied the event?)"
done
ok "gw: routes $pool1/128 and $pool2/128 into vti02, applied by vtid"
events=$(vtictl_on gw events 2>&1)
grep -q "up-client-v6" <<<"$events" || fail "gw: vtid's events do not show the IPv6 up-client: $events"
ok "gw: vtid applied the -v6 events (vtictl events)"
expect_lease gw "$pool1" @road1
expect_lease gw "$pool2" @road2
status=$(vtictl_on gw status 2>&1)
grep -q "$pool1" <<<"$status" || fail "gw: vtictl status does not show $pool1: $status"
ok "gw: vtictl status shows the IPv6 clients"
# Self-healing in IPv6: a client's route deleted behind vtid's back comes back; so does the device.
ip -n gw -6 route del "$pool1/128" dev vti02
wait_for 10 sh -c "ip -n gw -6 route show $pool1/128 | grep -q 'dev vti02 proto 157'" >/dev/null \
  || fail "gw: vtid did not restore $pool1/128 within 10 s: $(tail -n 5 "$TB_RUN/gw/vtid.log")"
ok "gw: vtid restored the IPv6 route $pool1/128"
ip -n gw link del vti02
wait_for 15 sh -c "ip -n gw -6 route show $pool2/128 | grep -q 'dev vti02 proto 157'" >/dev/null \
  || fail "gw: vtid did not re-create vti02 with its routes within 15 s: $(tail -n 5 "$TB_RUN/gw/vtid.log")"
grep -q "vti6 remote any local 2001:db8::2" <<<"$(ip -n gw -d link show vti02)" || fail "gw: vti02 came back as something else than the shared vti6"
ok "gw: vtid re-created vti02 (vti6) with both clients' routes"
expect_mtu gw vti02 1390 "re-created with the shared IPv6 device's MTU"
expect_sysctl gw net.ipv6.conf.vti02.disable_ipv6 0
expect_sysctl gw net.ipv6.conf.vti02.accept_ra 0
ip netns exec road1 ping -6 -c 2 -i 0.3 -W 2 -I "$pool1" 2001:db8:3::1 >/dev/null 2>&1 || fail "road1: $pool1 does not reach 2001:db8:3::1 through the re-created device"
ok "road1: $pool1 reaches 2001:db8:3::1 through the re-created device"
