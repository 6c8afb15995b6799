# Road warriors with vti-updown on every host: each client's pool /32 is routed into the shared
# vti02 with our protocol; one client leaves and exactly its route goes while the other keeps
# working; it comes back and so does its route; the shared device's MTU and sysctls are set.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
. "$(dirname "${BASH_SOURCE[0]}")/road-warriors.sh"
expect_route_protocol gw "$pool2" 157
expect_no_route gw "$pool1" "road1 disconnected (the stock script leaves this route behind)"
# A shared device serves clients with different proposals: conservative suite with NAT-T.
expect_mtu gw vti02 1406 "shared device: worst common suite with NAT-T"
expect_sysctl gw net.ipv4.conf.vti02.disable_policy 1
expect_sysctl gw net.ipv4.conf.vti02.rp_filter 2
before=$(dev_tx_packets gw vti02)
expect_ping road2 "$pool2" 10.3.0.1 "road2 untouched by road1 leaving"
tb_add road1 rw
tb_up road1 rw gw
again=$(ip -n road1 -4 addr show | awk '/inet 10\.0\.1\./ { sub(/\/.*/, "", $2); print $2; exit }')
expect_route gw "$again" vti02
expect_ping road1 "$again" 10.3.0.1 "road1 after reconnecting"
expect_ping road2 "$pool2" 10.3.0.1 "road2 still"
