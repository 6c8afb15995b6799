# Site-to-site with vti-updown as the hook: vti-routing=yes installs the LAN routes itself (tagged
# with our protocol), sets MTU and sysctls; a disconnect keeps the device on both ends (libreswan
# 5.x sends the responder down-client then unroute-client for it); a reconnect finds everything in
# place; a conn deleted loses its routes and keeps its device (the hook never deletes one).
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
updown=$(tb_updown)
s2s_hosts
conf=$(s2s_conf "$updown" 10.1.0.0/24 10.2.0.0/24 yes)
s2s_start "$conf" testbed-hook-site-to-site-secret
s2s_up
expect_route west 10.2.0.0/24 vti01
expect_route_protocol west 10.2.0.0/24 157
expect_route east 10.1.0.0/24 vti01
# AES-GCM-16 (ICV 16, IV 8), IPv4, no NAT-T, 1500-byte uplink: 1446, as design.md's table says.
expect_mtu west vti01 1446 "AES-GCM-16 over IPv4 without NAT-T"
expect_mtu east vti01 1446 "AES-GCM-16 over IPv4 without NAT-T"
expect_sysctl west net.ipv4.conf.vti01.disable_policy 1
expect_sysctl west net.ipv4.conf.vti01.rp_filter 2
expect_sysctl west net.ipv4.conf.vti01.forwarding 1
expect_sysctl west net.ipv4.conf.vti01.send_redirects 0
expect_sysctl west net.ipv4.ip_forward 1
before=$(sa_counters west)
expect_ping west 10.1.0.1 10.2.0.1 "west LAN to east LAN, routed by the hook"
expect_ping east 10.2.0.1 10.1.0.1 "east LAN to west LAN, routed by the hook"
expect_sa_counters_moved west "$before"
# A mere disconnect (the Child SA goes, the conn stays; `--terminate`: 4.10's whack has no
# `--down`, 5.x keeps `--terminate` as its alias): west takes it down first, so east (the
# responder) hears of it from its peer (5.2 then calls east's hook with down-client and
# unroute-client), then east terminates too. The device stays on both ends for the reconnect;
# the routes go.
tb_whack west --name s2s --terminate >/dev/null 2>&1 || true
tb_whack east --name s2s --terminate >/dev/null 2>&1 || true
wait_for 10 sh -c '[ -z "$(ip -n east route show 10.1.0.0/24)" ] && [ -z "$(ip -n west route show 10.2.0.0/24)" ]' >/dev/null \
  || fail "a LAN route is still there 10 s after the disconnect (no down-client?)"
ip -n west link show vti01 >/dev/null 2>&1 || fail "west: vti01 vanished on a mere disconnect"
ok "west: vti01 stays while the conn is only down"
ip -n east link show vti01 >/dev/null 2>&1 || fail "east: vti01 vanished when its peer disconnected"
ok "east: vti01 stays when its peer disconnects (the responder's down and unroute)"
tb_up west s2s east
expect_ping west 10.1.0.1 10.2.0.1 "after the reconnect"
# Deleting the conn removes its routes; the device stays (nothing tells the hook a deleted conn
# from a 5.x disconnect; vtid removes it when the conn leaves ipsec.conf).
tb_down west s2s
tb_down east s2s
wait_for 10 sh -c '[ -z "$(ip -n west route show 10.2.0.0/24)" ]' >/dev/null || fail "west: route 10.2.0.0/24 still there 10 s after the delete"
expect_no_route west 10.2.0.0/24 "the conn was deleted"
expect_no_route east 10.1.0.0/24 "the conn was deleted"
expect_vti west vti01 192.0.2.1 192.0.2.2 5
