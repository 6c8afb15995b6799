# IPv4 inside IPv6 with vti-updown (issue 19, mixed families): IPv6 end points, IPv4 LANs. The
# device is a vti6 (its family is the end points'), the IPv4 LAN routes go into it, its IPv4
# sysctls are set (the traffic inside is IPv4) and its MTU counts IPv6's 40-byte outer header.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
updown=$(tb_updown)
tb_switch
v6host west 2001:db8::1
v6host east 2001:db8::2
for lan in west:10.1.0.1/24 east:10.2.0.1/24; do
  ip -n "${lan%%:*}" link add lan0 type dummy
  ip -n "${lan%%:*}" addr add "${lan#*:}" dev lan0
  ip -n "${lan%%:*}" link set lan0 up
done
conf=$(s2s_conf "$updown" 10.1.0.0/24 10.2.0.0/24 yes 2001:db8::1 2001:db8::2)
s2s_start "$conf" testbed-4in6-secret
tb_up west s2s east
grep -q "vti6 remote 2001:db8::2 local 2001:db8::1" <<<"$(ip -n west -d link show vti01 2>/dev/null)" || fail "west: vti01 is not a vti6 between the IPv6 end points"
ok "west: vti01 is a vti6 between the IPv6 end points"
expect_route west 10.2.0.0/24 vti01
expect_route_protocol west 10.2.0.0/24 157
expect_route east 10.1.0.0/24 vti01
expect_mtu west vti01 1426 "AES-GCM-16 over IPv6 without NAT-T, IPv4 inside"
expect_sysctl west net.ipv4.conf.vti01.disable_policy 1
expect_sysctl west net.ipv4.conf.vti01.rp_filter 2
expect_sysctl west net.ipv4.ip_forward 1
before=$(sa_counters west)
expect_ping west 10.1.0.1 10.2.0.1 "IPv4 LAN to IPv4 LAN inside IPv6"
expect_ping east 10.2.0.1 10.1.0.1 "and back"
expect_sa_counters_moved west "$before"
