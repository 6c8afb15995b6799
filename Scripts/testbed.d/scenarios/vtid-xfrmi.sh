# A road-warrior gateway on XFRM interfaces with vtid and vti-updown (qemu kernels only). Two
# any-remote conns on one local address, each on its own XFRM interface (rw on ipsec2, rw2 on
# ipsec3: the case VTI cannot serve, one any-remote VTI per local address); a client on each:
# per-client routes of our protocol, MTU and sysctls, leases, status. The device deleted behind
# everyone's back is made again as pluto made it and carries its client again; a client leaving
# loses exactly its route; pluto restarted (its shutdown deletes its devices): vtid keeps the
# device of a configured conn, pluto adopts it, the client reconnects through it.
require_xfrmi
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
tb_switch
tb_host gw 192.0.2.2/24 10.3.0.1/24
tb_host road1 192.0.2.11/24
tb_host road2 192.0.2.12/24
gw_updown=$(vtid_config gw)
secret='PSK "testbed-vtid-xfrmi-secret"'
tb_pluto gw "config setup
$(xfrmi_rw_conn rw 2 10.0.1.10-10.0.1.50 road1 "$gw_updown")
$(xfrmi_rw_conn rw2 3 10.0.2.10-10.0.2.50 road2 "$gw_updown")" "@east @road1 : $secret
@east @road2 : $secret"
vtid_start gw
checked=$(ip netns exec gw "$VTICTL" check --config "$TB_RUN/gw/vtid.yaml" 2>&1) || fail "gw: vtictl check failed: $checked"
[[ "$checked" == *"2 route-based conns checked: 0 errors, "* ]] || fail "gw: vtictl check found errors: $checked"
ok "gw: vtictl check knows the two XFRM-interface conns: $checked"
for n in 1 2; do tb_pluto road$n "$(rw_client_conf 192.0.2.1$n road$n "$UPDOWN")" "@road$n @east : $secret"; done
for host in gw road1 road2; do tb_add $host rw; done
tb_add gw rw2
tb_up road1 rw gw
tb_up road2 rw gw
pool1=$(ip -n road1 -4 addr show | awk '/inet 10\.0\.1\./ { sub(/\/.*/, "", $2); print $2; exit }')
pool2=$(ip -n road2 -4 addr show | awk '/inet 10\.0\.2\./ { sub(/\/.*/, "", $2); print $2; exit }')
[ -n "$pool1" ] && [ -n "$pool2" ] || fail "the clients got no addresses from their conns' pools ('$pool1' from rw, '$pool2' from rw2)"
ok "road1 got $pool1 from rw's pool, road2 $pool2 from rw2's: two any-remote conns on 192.0.2.2"
expect_xfrmi gw ipsec2 2
expect_xfrmi gw ipsec3 3
expect_route gw "$pool1" ipsec2
expect_route_protocol gw "$pool1" 157
expect_route gw "$pool2" ipsec3
expect_route_protocol gw "$pool2" 157
expect_mtu gw ipsec2 1406 "shared device: worst common suite with NAT-T"
expect_mtu gw ipsec3 1406 "shared device: worst common suite with NAT-T"
expect_sysctl gw net.ipv4.conf.ipsec2.rp_filter 2
expect_sysctl gw net.ipv4.conf.ipsec3.forwarding 1
expect_sysctl gw net.ipv4.ip_forward 1
expect_ping road1 "$pool1" 10.3.0.1 "road1 through ipsec2 (conn rw)"
expect_ping road2 "$pool2" 10.3.0.1 "road2 through ipsec3 (conn rw2, same local address, any remote)"
expect_lease gw "$pool1" @road1
expect_lease gw "$pool2" @road2
status=$(vtictl_on gw status)
echo "$status" | sed 's/^/    /'
grep -Eq '^rw +ipsec2 +up +1406 +if_id 2 ' <<<"$status" || fail "gw: vtictl status does not show rw on ipsec2 (up, MTU 1406, if_id 2)"
grep -Eq '^rw2 +ipsec3 +up +1406 +if_id 3 ' <<<"$status" || fail "gw: vtictl status does not show rw2 on ipsec3 (up, MTU 1406, if_id 3)"
ok "gw: vtictl status shows each conn on its XFRM interface with its if_id"
# The kernel's own device table (read by vtictl, not from vtid) lists XFRM interfaces too.
grep -Eq '^ipsec2 +xfrm +up +1406 +- +- +- +- +2 ' <<<"$status" || fail "gw: vtictl status's device table does not show ipsec2 (xfrm, up, MTU 1406, if_id 2)"
grep -Eq ' if_id 2 ' <<<"$status" || fail "gw: vtictl status's SA table shows no SA with if_id 2"
ok "gw: vtictl status's device and SA tables show ipsec2 with if_id 2 from the kernel"

# Deleted behind everyone's back: vtid makes it again as pluto made it, with its client's route.
ip -n gw link del ipsec2
took=$(wait_for 15 sh -c "ip -n gw route show $pool1 | grep -q 'dev ipsec2 '") \
  || fail "gw: ipsec2 and the route of $pool1 were not restored within 15 s: $(tail -n 3 "$TB_RUN/gw/vtid.log")"
ok "gw: vtid restored the deleted ipsec2 and the route of $pool1 in ${took}s"
expect_xfrmi gw ipsec2 2
expect_mtu gw ipsec2 1406 "re-created with the shared device's MTU"
expect_ping road1 "$pool1" 10.3.0.1 "road1 through the re-created ipsec2"

# road1 leaves: exactly its route goes, road2 keeps working.
tb_down road1 rw
wait_sas_gone gw 192.0.2.11
wait_for 10 sh -c "! ip -n gw route show $pool1 | grep -q ." >/dev/null || fail "gw: the route of $pool1 stayed after road1 left"
ok "gw: the route of $pool1 left with road1"
expect_route gw "$pool2" ipsec3
expect_ping road2 "$pool2" 10.3.0.1 "road2 untouched by road1 leaving"

# pluto restarted: its shutdown deletes the devices it made; vtid keeps a configured conn's device
# (made again as pluto made it), pluto adopts it when the conn is added, road2 reconnects through it.
tb_whack gw --shutdown >/dev/null 2>&1 || true
wait_for 15 sh -c "! kill -0 $(cat "$TB_RUN/gw/pluto.pid")" >/dev/null || fail "gw: pluto did not stop within 15 s"
wait_for 15 ip -n gw link show ipsec3 >/dev/null || fail "gw: ipsec3 is not there after pluto's shutdown (vtid should keep it)"
index=$(ip -n gw -o link show ipsec3 | cut -d: -f1)
ok "gw: ipsec3 kept while pluto is down (index $index)"
tb_pluto_run gw
tb_add gw rw
tb_add gw rw2
# road2 initiates again (5.x may already be reviving the conn the gateway's shutdown deleted).
tb_up road2 rw gw
again=$(ip -n road2 -4 addr show | awk '/inet 10\.0\.2\./ { sub(/\/.*/, "", $2); print $2; exit }')
expect_route gw "$again" ipsec3
[ "$(ip -n gw -o link show ipsec3 | cut -d: -f1)" = "$index" ] || fail "gw: ipsec3 was made again by pluto (index changed), not adopted"
ok "gw: pluto adopted the kept ipsec3 (same index $index)"
expect_ping road2 "$again" 10.3.0.1 "road2 after pluto's restart"
# Nothing of another protocol was touched: the LAN's own route is still there.
grep -q 'proto kernel' <<<"$(ip -n gw route show 10.3.0.0/24)" || fail "gw: the LAN's kernel route is gone"
ok "gw: the LAN's kernel route is untouched"
