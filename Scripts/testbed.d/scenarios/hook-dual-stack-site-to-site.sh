# Dual-stack site-to-site with vti-updown (issue 19; libreswan 5.x: `leftsubnet=v4,v6` is two
# selectors in one Child SA): IPv4 end points, each gateway with an IPv4 and an IPv6 LAN behind one
# vti. Both families' LAN routes go into the device and both pass traffic.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
updown=$(tb_updown)
s2s_hosts
for lan in west:fd01::1 east:fd02::1; do ip -n "${lan%%:*}" -6 addr add "${lan#*:}/64" dev lan0 nodad; done
conf=$(s2s_conf "$updown" 10.1.0.0/24,fd01::/64 10.2.0.0/24,fd02::/64 yes)
s2s_start "$conf" testbed-dual-stack-secret
s2s_up
expect_route west 10.2.0.0/24 vti01
grep -q "dev vti01 proto 157" <<<"$(ip -n west -6 route show fd02::/64)" || fail "west: no route fd02::/64 dev vti01 proto 157 (IPv6 routes: $(ip -n west -6 route | tr '\n' ';'))"
ok "west: route fd02::/64 dev vti01 proto 157"
expect_ping west 10.1.0.1 10.2.0.1 "IPv4 LANs, dual-stack Child SA"
ip netns exec west ping -6 -c 2 -i 0.3 -W 2 -I fd01::1 fd02::1 >/dev/null 2>&1 || fail "west: fd01::1 does not reach fd02::1 (IPv6 half of the dual-stack Child SA)"
ok "west: fd01::1 reaches fd02::1 (IPv6 LANs, same Child SA)"
