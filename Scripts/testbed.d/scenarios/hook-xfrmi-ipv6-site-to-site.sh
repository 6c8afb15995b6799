# IPv6 site-to-site over an XFRM interface with vti-updown (issues 18 and 19; qemu kernels only):
# IPv6 end points and IPv6 LANs, ipsec-interface=1. The hook adopts pluto's ipsec1, routes the
# peer's LAN into it with our protocol, sets the IPv6 sysctls (no disable_policy: XFRM interfaces
# need none) and an MTU with IPv6's 40-byte outer header; LAN-to-LAN ping6 flows through it.
require_xfrmi
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
tb_switch
v6host west 2001:db8::1 fd01::1
v6host east 2001:db8::2 fd02::1
conf=$(s2s_conf "$UPDOWN" fd01::/64 fd02::/64 yes 2001:db8::1 2001:db8::2 \
  | sed "/^    mark=/d; /^    vti-routing=/d; s/^    vti-interface=.*/    ipsec-interface=1/")
s2s_start "$conf" testbed-xfrmi-ipv6-secret
tb_up west s2s east
for host in west east; do expect_xfrmi $host ipsec1 1; done
for route in west:fd02::/64 east:fd01::/64; do
  host=${route%%:*}; prefix=${route#*:}
  shown=$(ip -n "$host" -6 route show "$prefix")
  grep -q "dev ipsec1 proto 157" <<<"$shown" || fail "$host: no route $prefix dev ipsec1 proto 157 (IPv6 routes: $(ip -n "$host" -6 route | tr '\n' ';'))"
  ok "$host: route $prefix dev ipsec1 proto 157"
done
# AES-GCM-16 over IPv6 without NAT-T on a 1500-byte uplink: 1426, as for a vti6.
expect_mtu west ipsec1 1426 "AES-GCM-16 over IPv6 without NAT-T"
expect_mtu east ipsec1 1426 "AES-GCM-16 over IPv6 without NAT-T"
expect_sysctl west net.ipv6.conf.ipsec1.forwarding 1
expect_sysctl west net.ipv6.conf.ipsec1.accept_redirects 0
expect_sysctl west net.ipv6.conf.ipsec1.accept_ra 0
expect_sysctl west net.ipv6.conf.ipsec1.disable_ipv6 0
expect_sysctl west net.ipv6.conf.all.forwarding 1
before=$(sa_counters west)
tx=$(dev_tx_packets west ipsec1)
ip netns exec west ping -6 -c 2 -i 0.3 -W 2 -I fd01::1 fd02::1 >/dev/null 2>&1 || fail "west: fd01::1 does not reach fd02::1 through ipsec1"
ok "west: fd01::1 reaches fd02::1 (IPv6 LANs through the XFRM interface, routed by the hook)"
ip netns exec east ping -6 -c 2 -i 0.3 -W 2 -I fd02::1 fd01::1 >/dev/null 2>&1 || fail "east: fd02::1 does not reach fd01::1 through ipsec1"
ok "east: fd02::1 reaches fd01::1"
expect_sa_counters_moved west "$before"
expect_device_counters_moved west ipsec1 "$tx"
