# Site-to-site over XFRM interfaces (ipsec-interface=1, pluto's managed devices) with vti-updown on
# both ends, no vtid: the hook routes the peer's LAN into ipsec1 with our protocol, sizes its MTU
# from the SA (AES-GCM, no NAT-T) and sets its sysctls; a terminate keeps the device and a reconnect
# routes again. Needs a qemu kernel (Scripts/testbed --kernel debian12 [--root debian13]).
require_xfrmi
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
s2s_hosts
conf=$(xfrmi_s2s_conf "$UPDOWN" 1)
s2s_start "$conf" "testbed-xfrmi-hook-secret"
tb_up west s2s east
for host in west east; do expect_xfrmi $host ipsec1 1; done
expect_route west 10.2.0.0/24 ipsec1
expect_route_protocol west 10.2.0.0/24 157
expect_route east 10.1.0.0/24 ipsec1
# One tunnel on the device: its MTU follows the SA (AES-GCM-16, no NAT-T) on a 1500-byte path.
expect_mtu west ipsec1 1446 "AES-GCM-16 over IPv4 without NAT-T, from the SA"
expect_sysctl west net.ipv4.conf.ipsec1.rp_filter 2
expect_sysctl west net.ipv4.conf.ipsec1.forwarding 1
expect_sysctl west net.ipv4.conf.ipsec1.accept_redirects 0
expect_sysctl west net.ipv4.ip_forward 1
before=$(sa_counters west)
tx=$(dev_tx_packets west ipsec1)
expect_ping west 10.1.0.1 10.2.0.1 "west LAN to east LAN through ipsec1, routed by the hook"
expect_sa_counters_moved west "$before"
expect_device_counters_moved west ipsec1 "$tx"
# A terminate: pluto keeps its device; the reconnect routes into it again.
tb_whack west --name s2s --terminate >/dev/null 2>&1 || true
wait_sas_gone west
expect_xfrmi west ipsec1 1
tb_up west s2s east
expect_route west 10.2.0.0/24 ipsec1
expect_ping west 10.1.0.1 10.2.0.1 "after the reconnect"
