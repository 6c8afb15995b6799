# IPv6 site-to-site with vti-updown as the hook (issue 19): IPv6 end points and IPv6 LANs over a
# vti6 device (ip6_vti), vti-routing=yes. The hook makes the vti6 device with the marks as keys,
# routes the peer's LAN into it with our protocol, sets the IPv6 sysctls and an MTU with IPv6's
# 40-byte outer header; LAN-to-LAN ping6 flows through it; a delete removes the route and keeps
# the device.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
updown=$(tb_updown)
tb_switch
v6host west 2001:db8::1 fd01::1
v6host east 2001:db8::2 fd02::1
conf=$(s2s_conf "$updown" fd01::/64 fd02::/64 yes 2001:db8::1 2001:db8::2)
s2s_start "$conf" testbed-ipv6-secret
tb_up west s2s east
for end in west:2001:db8::1:2001:db8::2 east:2001:db8::2:2001:db8::1; do
  host=${end%%:*}; rest=${end#*:}; local_addr=${rest%:2001*}; remote=2001${rest##*:2001}
  shown=$(ip -n "$host" -d link show vti01 2>/dev/null) || fail "$host: vti01 does not exist"
  grep -q "vti6 remote $remote local $local_addr" <<<"$shown" || fail "$host: vti01 is not the vti6 device wanted: $(echo "$shown" | grep -i vti)"
  grep -q "ikey 0.0.0.5 okey 0.0.0.5" <<<"$shown" || fail "$host: vti01 does not have the marks as keys: $(echo "$shown" | grep -i key)"
  grep -q "[<,]UP[,>]" <<<"${shown%%$'\n'*}" || fail "$host: vti01 is not up"
  ok "$host: vti01 is a vti6 device, remote $remote local $local_addr, keys 5, up"
done
for route in west:fd02::/64 east:fd01::/64; do
  host=${route%%:*}; prefix=${route#*:}
  shown=$(ip -n "$host" -6 route show "$prefix")
  grep -q "dev vti01 proto 157" <<<"$shown" || fail "$host: no route $prefix dev vti01 proto 157 (IPv6 routes: $(ip -n "$host" -6 route | tr '\n' ';'))"
  ok "$host: route $prefix dev vti01 proto 157"
done
# AES-GCM-16 over IPv6 (outer header 40), no NAT-T, 1500-byte uplink: 1500-40-8-8-16 = 1428,
# a multiple of 4, minus the 2 trailer bytes: 1426; above IPv6's minimum of 1280.
expect_mtu west vti01 1426 "AES-GCM-16 over IPv6 without NAT-T"
expect_mtu east vti01 1426 "AES-GCM-16 over IPv6 without NAT-T"
expect_sysctl west net.ipv6.conf.vti01.forwarding 1
expect_sysctl west net.ipv6.conf.vti01.accept_redirects 0
expect_sysctl west net.ipv6.conf.all.forwarding 1
expect_sysctl west net.ipv6.conf.vti01.disable_policy 1
expect_sysctl west net.ipv6.conf.vti01.accept_ra 0
expect_sysctl west net.ipv6.conf.vti01.disable_ipv6 0
before=$(sa_counters west)
ip netns exec west ping -6 -c 2 -i 0.3 -W 2 -I fd01::1 fd02::1 >/dev/null 2>&1 || fail "west: fd01::1 does not reach fd02::1 through vti01"
ok "west: fd01::1 reaches fd02::1 (IPv6 LANs through the vti6 device, routed by the hook)"
ip netns exec east ping -6 -c 2 -i 0.3 -W 2 -I fd02::1 fd01::1 >/dev/null 2>&1 || fail "east: fd02::1 does not reach fd01::1 through vti01"
ok "east: fd02::1 reaches fd01::1"
expect_sa_counters_moved west "$before"
tb_down west s2s
tb_down east s2s
wait_for 10 sh -c '[ -z "$(ip -n west -6 route show fd02::/64)" ]' >/dev/null || fail "west: route fd02::/64 still there 10 s after the delete"
ok "west: no route fd02::/64 (the conn was deleted)"
ip -n west link show vti01 >/dev/null 2>&1 || fail "west: vti01 vanished (the hook never deletes a device)"
ok "west: vti01 stays"
