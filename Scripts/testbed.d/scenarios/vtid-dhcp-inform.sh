# A road warrior learns the networks behind the gateway by DHCPINFORM, as Windows' VPN client
# does (issue 21): the IKEv2 tunnel carries everything (0.0.0.0/0 both ways) but the client routes
# nothing into it by itself (its updown does nothing: like Windows with split tunnelling and no
# class-based route), so the LAN host behind the gateway is unreachable. The client broadcasts a
# DHCPINFORM from its pool address through the tunnel; vtid answers on vti02 from the gateway's LAN
# address with options 121 and 249; the client installs what they say and reaches the LAN host.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
tb_switch
tb_host gw 192.0.2.2/24
tb_host road1 192.0.2.11/24
# The LAN behind the gateway: a host of its own (10.3.0.5) on a veth, default route via the gateway.
ip netns add lan
ip link add lan0 netns gw type veth peer name eth0 netns lan
ip -n gw addr add 10.3.0.1/24 dev lan0
ip -n gw link set lan0 up
ip -n lan link set lo up
ip -n lan addr add 10.3.0.5/24 dev eth0
ip -n lan link set eth0 up
ip -n lan route add default via 10.3.0.1
gw_updown=$(vtid_config gw "conns:
  rw:
    dhcp_inform:
      routes: [10.3.0.0/24]
      dns: [10.3.0.53]
      domain: corp.example")
secret='PSK "testbed-vtid-dhcp-inform-secret"'
tb_pluto gw "$(rw_server_conf "$gw_updown")" "@east @road1 : $secret"
vtid_start gw
tb_pluto road1 "$(rw_client_conf 192.0.2.11 road1 /bin/true)" "@road1 @east : $secret"
tb_add gw rw
tb_add road1 rw
tb_up road1 rw gw
# The client's pool address, from its IPsec policy (its updown added nothing, not even that).
pool=$(ip -n road1 xfrm policy | awk '$1 == "src" && $2 ~ /^10\.0\.1\./ { sub(/\/.*/, "", $2); print $2; exit }')
[ -n "$pool" ] || fail "road1 has no policy from a pool address: $(ip -n road1 xfrm policy)"
ip -n road1 addr add "$pool/32" dev eth0
expect_route gw "$pool" vti02
took=$(wait_for 10 grep -q "answering DHCPINFORM on vti02 for conn rw" "$TB_RUN/gw/vtid.log") \
  || fail "gw: vtid opened no DHCP socket on vti02: $(grep dhcp "$TB_RUN/gw/vtid.log")"
ok "gw: vtid answers DHCPINFORM on vti02 (socket open ${took} s after the check began)"
ip netns exec road1 ping -c 1 -W 1 -I "$pool" 10.3.0.5 >/dev/null 2>&1 \
  && fail "road1 reaches 10.3.0.5 before it asked for routes: the scenario proves nothing"
ok "road1: 10.3.0.5 is unreachable from $pool before the DHCPINFORM (no route)"

# The INFORM, broadcast from the pool address as Windows sends it; the client installs the routes.
answer=$(ip netns exec road1 /usr/bin/python3 "$here/dhcp-inform-client" inform --device eth0 --client "$pool" \
  --timeout 20 --install-routes 2>&1) || fail "road1: no DHCPACK: $answer"
echo "$answer" | sed 's/^/    /'
ack=$(grep '"event": "ack"' <<<"$answer")
grep -q '"source": "10.3.0.1"' <<<"$ack" || fail "road1: the answer did not come from the gateway's LAN address: $ack"
grep -q '"routes_121": \[\["10.3.0.0/24", "10.3.0.1"\]\]' <<<"$ack" || fail "road1: option 121 is not 10.3.0.0/24 via 10.3.0.1: $ack"
grep -q '"routes_249": \[\["10.3.0.0/24", "10.3.0.1"\]\]' <<<"$ack" || fail "road1: option 249 is not 10.3.0.0/24 via 10.3.0.1: $ack"
grep -q '"dns": \["10.3.0.53"\]' <<<"$ack" && grep -q '"domain": "corp.example"' <<<"$ack" || fail "road1: DNS settings missing: $ack"
grep -q '"lease_time": false' <<<"$ack" || fail "road1: the answer to an INFORM carries a lease time: $ack"
ok "road1: DHCPACK through the tunnel from 10.3.0.1: options 121 and 249 say 10.3.0.0/24 via 10.3.0.1, DNS 10.3.0.53, domain corp.example"
grep -q "^10.3.0.0/24 via 10.3.0.1 dev eth0 .*src $pool" <<<"$(ip -n road1 route)" || fail "road1: the route from option 121 is not installed: $(ip -n road1 route)"
expect_ping road1 "$pool" 10.3.0.5 "the LAN host, through the route the DHCPACK gave"
expect_metric gw 'vtid_dhcp_inform_total{outcome="answered"}' 1 "one INFORM, one answer"
grep -q "dhcp: answered DHCPINFORM from $pool on vti02 (conn rw) as 10.3.0.1: 1 routes" "$TB_RUN/gw/vtid.log" \
  || fail "gw: vtid did not log the answer: $(grep dhcp "$TB_RUN/gw/vtid.log")"
ok "gw: vtid logged the answer to $pool"
