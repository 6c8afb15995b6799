# A dual-stack road warrior on an XFRM interface with vtid (issue 19; libreswan 5.x, qemu kernels):
# the gateway hands out an IPv4 and an IPv6 address from two pools (rightaddresspool=v4,v6; 5.2 takes an IPv6 pool only as a prefix) in one
# Child SA with both families' selectors, on ipsec2, which carries both families. vtid routes the
# client's /32 and /128 into ipsec2 with our protocol and sets both families' sysctls; the client
# reaches the gateway's IPv4 and IPv6 LANs; when it leaves, both routes go.
ipsec --version 2>/dev/null | grep -q 'Libreswan 5\.' || fail "dual-stack pools need libreswan 5.x (Scripts/testbed --kernel debian12 --root debian13)"
require_xfrmi
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
tb_switch
tb_host gw 192.0.2.2/24 10.3.0.1/24
# The IPv6 LAN in 2000::/3: for ::/0 the client's updown routes 2000::/3 (as the stock script does).
ip -n gw -6 addr add 2001:db8:3::1/64 dev lan0 nodad
tb_host road1 192.0.2.11/24
gw_updown=$(vtid_config gw)
secret='PSK "testbed-xfrmi-dual-stack-secret"'
tb_pluto gw "config setup
$(xfrmi_rw_conn rw 2 10.0.1.10-10.0.1.50,2001:db8:1::/120 road1 "$gw_updown" | sed 's#^    leftsubnet=.*#    leftsubnet=0.0.0.0/0,::/0#')" "@east @road1 : $secret"
vtid_start gw
# The client's own selectors are both families too (libreswan narrows them to its two leases).
tb_pluto road1 "$(rw_client_conf 192.0.2.11 road1 "$UPDOWN" 192.0.2.2 0.0.0.0/0,::/0 | sed 's#^    leftmodecfgclient=yes#&\n    leftsubnet=0.0.0.0/0,::/0#')" "@road1 @east : $secret"
tb_add gw rw
tb_add road1 rw
tb_up road1 rw gw
v4=$(pool_address road1)
v6=$(ip -n road1 -6 addr show | awk '/inet6 2001:db8:1::/ { sub(/\/.*/, "", $2); print $2; exit }')
[ -n "$v4" ] && [ -n "$v6" ] || fail "road1 did not get an address from both pools (IPv4 '$v4', IPv6 '$v6'): $(ip -n road1 addr | tr '\n' ';')"
ok "road1 got $v4 and $v6 in one Child SA"
expect_xfrmi gw ipsec2 2
expect_route gw "$v4" ipsec2
expect_route_protocol gw "$v4" 157
grep -q "dev ipsec2 proto 157" <<<"$(ip -n gw -6 route show "$v6")" || fail "gw: no route $v6 dev ipsec2 proto 157 (IPv6 routes: $(ip -n gw -6 route | tr '\n' ';'))"
ok "gw: route $v6/128 dev ipsec2 proto 157"
expect_sysctl gw net.ipv4.conf.ipsec2.forwarding 1
expect_sysctl gw net.ipv6.conf.ipsec2.forwarding 1
expect_sysctl gw net.ipv6.conf.ipsec2.accept_ra 0
expect_ping road1 "$v4" 10.3.0.1 "road1's IPv4 address to the gateway's IPv4 LAN"
ip netns exec road1 ping -6 -c 2 -i 0.3 -W 2 -I "$v6" 2001:db8:3::1 >/dev/null 2>&1 \
  || fail "road1: $v6 does not reach 2001:db8:3::1 through the tunnel (road1's IPv6 routes: $(ip -n road1 -6 route | tr '\n' ';'))"
ok "road1: $v6 reaches 2001:db8:3::1 (the IPv6 half of the same Child SA, through ipsec2)"
expect_lease gw "$v4" @road1
tb_down road1 rw
wait_sas_gone gw 192.0.2.11
wait_for 10 sh -c "[ -z \"\$(ip -n gw route show $v4)\" ] && [ -z \"\$(ip -n gw -6 route show $v6)\" ]" >/dev/null \
  || fail "gw: the routes of $v4 and $v6 stayed after road1 left"
ok "gw: both of road1's routes left with it"
