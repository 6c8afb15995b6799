# libreswan 5.2's ipsec-interface-managed=no with vtid: the XFRM interface is vtid's. vtid makes
# ipsec1 (if_id 1) from ipsec.conf when it starts, before pluto has the conn; pluto only installs
# SAs and policies with the if_id; the hook routes east's LAN into it. pluto restarted: the device
# is the same one throughout (never pluto's to delete), and the tunnel comes back through it.
# east has no vtid: its hook makes its ipsec1 at the first event. Needs libreswan 5.2 and qemu.
ipsec --version 2>/dev/null | grep -q 'Libreswan 5\.' || fail "ipsec-interface-managed= needs libreswan 5.2 (Scripts/testbed --kernel debian12 --root debian13)"
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
s2s_hosts
west_updown=$(vtid_config west)
unmanaged() { xfrmi_s2s_conf "$1" 1 | sed 's/^config setup$/config setup\n    ipsec-interface-managed=no/'; }
secret='@west @east : PSK "testbed-vtid-xfrmi-unmanaged-secret"'
tb_pluto west "$(unmanaged "$west_updown")" "$secret"
tb_pluto east "$(unmanaged "$UPDOWN")" "$secret"
vtid_start west
expect_xfrmi west ipsec1 1
index=$(ip -n west -o link show ipsec1 | cut -d: -f1)
ok "west: vtid made ipsec1 before pluto had the conn (index $index)"
tb_add west s2s
tb_add east s2s
tb_up west s2s east
expect_xfrmi east ipsec1 1
expect_route west 10.2.0.0/24 ipsec1
expect_route_protocol west 10.2.0.0/24 157
expect_route east 10.1.0.0/24 ipsec1
expect_mtu west ipsec1 1446 "AES-GCM-16 over IPv4 without NAT-T, from the SA"
expect_ping west 10.1.0.1 10.2.0.1 "west LAN to east LAN through vtid's ipsec1"
# pluto restarted on west: the device is vtid's, so it is the same one before, during and after.
tb_whack west --shutdown >/dev/null 2>&1 || true
wait_for 15 sh -c "! kill -0 $(cat "$TB_RUN/west/pluto.pid")" >/dev/null || fail "west: pluto did not stop within 15 s"
[ "$(ip -n west -o link show ipsec1 2>/dev/null | cut -d: -f1)" = "$index" ] || fail "west: ipsec1 did not survive pluto's shutdown"
ok "west: ipsec1 stays while pluto is down (index $index)"
tb_pluto_run west
tb_add west s2s
tb_up west s2s east
[ "$(ip -n west -o link show ipsec1 | cut -d: -f1)" = "$index" ] || fail "west: ipsec1 was replaced across pluto's restart"
expect_route west 10.2.0.0/24 ipsec1
expect_ping west 10.1.0.1 10.2.0.1 "after pluto's restart, through the same ipsec1 (index $index)"
