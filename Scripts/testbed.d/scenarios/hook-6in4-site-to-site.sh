# IPv6 inside IPv4 with vti-updown (issue 19, mixed families): IPv4 end points, IPv6 LANs. The
# device is a vti (its family is the end points'), the IPv6 LAN routes go into it, its IPv6
# sysctls are set (the traffic inside is IPv6) and its MTU counts IPv4's 20-byte outer header.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
updown=$(tb_updown)
tb_switch
tb_host west 192.0.2.1/24
tb_host east 192.0.2.2/24
for lan in west:fd01::1 east:fd02::1; do
  ip -n "${lan%%:*}" link add lan0 type dummy
  ip -n "${lan%%:*}" -6 addr add "${lan#*:}/64" dev lan0 nodad
  ip -n "${lan%%:*}" link set lan0 up
done
conf=$(s2s_conf "$updown" fd01::/64 fd02::/64 yes 192.0.2.1 192.0.2.2)
s2s_start "$conf" testbed-6in4-secret
tb_up west s2s east
expect_vti west vti01 192.0.2.1 192.0.2.2 5
grep -q "dev vti01 proto 157" <<<"$(ip -n west -6 route show fd02::/64)" || fail "west: no route fd02::/64 dev vti01 proto 157 (IPv6 routes: $(ip -n west -6 route | tr '\n' ';'))"
ok "west: route fd02::/64 dev vti01 proto 157"
expect_mtu west vti01 1446 "AES-GCM-16 over IPv4 without NAT-T, IPv6 inside"
expect_sysctl west net.ipv6.conf.vti01.forwarding 1
expect_sysctl west net.ipv6.conf.vti01.disable_ipv6 0
expect_sysctl west net.ipv6.conf.all.forwarding 1
before=$(sa_counters west)
ip netns exec west ping -6 -c 2 -i 0.3 -W 2 -I fd01::1 fd02::1 >/dev/null 2>&1 || fail "west: fd01::1 does not reach fd02::1 inside IPv4"
ok "west: fd01::1 reaches fd02::1 (IPv6 LANs inside IPv4)"
expect_sa_counters_moved west "$before"
