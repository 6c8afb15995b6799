# Past one gateway (issue 20), site-to-site with a standby: the branch (203.0.113.7, LAN 10.2.0.0/24)
# has a tunnel to each gateway of Profiles/bgp-gateways; both gateways announce 10.2.0.0/24 and the
# router prefers gw1 (local preference 200 against 100, set in its import filters). The SAs of gw1's
# tunnel are flushed behind pluto's back: vtid sees no SA, keeps the route for sa_grace_s (10 s),
# then removes it; BGP withdraws it and the LAN host's traffic to the branch goes through gw2. Times
# are measured from the flush. Then gw1's tunnel is made again and the router goes back to gw1.
# The branch is not one of our gateways: it runs the hook alone with vti-routing=no and returns
# traffic to the site through gw2's tunnel (a static route), so the return path does not depend on
# gw1's tunnel and the LAN-to-branch direction is what fails over. Its hook sets rp_filter off: a
# VTI has no address, and for a device without one the kernel's loose check fails every source that
# is routed through another device (here: requests in on vti-hq1, the route back on vti-hq2).
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
secret=testbed-bgp-site-secret
bgp_site "$secret"
since() { awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }'; }
tb_internet_host branch 203.0.113.7/24 10.2.0.1/24
printf 'rp_filter = off\nvtid = %s\n' "$TB_RUN/branch/no-vtid" >"$TB_RUN/branch/hook.conf"
branch_updown="\"$UPDOWN --config $TB_RUN/branch/hook.conf\""
branch_conn() {  # NAME GATEWAY_NUMBER MARK
  echo "conn $1
    left=203.0.113.7
    leftid=@branch.example.com
    leftsubnet=10.2.0.0/24
    right=198.51.100.$2
    rightid=@gw$2.example.com
    rightsubnet=10.3.0.0/16
    authby=secret
    ikev2=insist
    esp=aes_gcm256
    mark=$3/0xffffffff
    vti-interface=vti-$1
    vti-routing=no
    leftupdown=$branch_updown
    rightupdown=$branch_updown"
}
tb_pluto branch "config setup
$(branch_conn hq1 1 5)
$(branch_conn hq2 2 6)" "@branch.example.com @gw1.example.com : PSK \"$secret\"
@branch.example.com @gw2.example.com : PSK \"$secret\""
tb_add branch hq1
tb_add branch hq2
tb_up branch hq1 gw1
tb_up branch hq2 gw2
ip -n branch route add 10.3.0.0/16 dev vti-hq2
expect_sysctl branch net.ipv4.conf.vti-hq1.rp_filter 0
for n in 1 2; do
  expect_route gw$n 10.2.0.0/24 vti-branch
  expect_route_protocol gw$n 10.2.0.0/24 157
done
took=$(wait_router_route router 10.2.0.0/24 10.3.0.1 30 "both gateways announce the branch, gw1 preferred")
ok "router: 10.2.0.0/24 via gw1 (${took} s)"
paths=$(birdc_on router show route 10.2.0.0/24 | grep -c 'unicast \[gw' || true)
[ "$paths" = 2 ] || fail "router: BIRD has $paths routes for 10.2.0.0/24, expected one from each gateway: $(birdc_on router show route 10.2.0.0/24 all | tr '\n' ' ')"
grep -q 'gw1' <<<"$(grep '\*' <<<"$(birdc_on router show route 10.2.0.0/24)")" || fail "router: the best route for 10.2.0.0/24 is not gw1's: $(birdc_on router show route 10.2.0.0/24 | tr '\n' ' ')"
ok "router: BIRD has both gateways' 10.2.0.0/24 and prefers gw1's (local preference)"
bgp_exports_match gw1
bgp_exports_match gw2
tx1=$(dev_tx_packets gw1 vti-branch)
expect_ping lanhost 10.3.4.10 10.2.0.1 "LAN host to the branch's LAN"
expect_device_counters_moved gw1 vti-branch "$tx1"

# gw1's tunnel dies: its SAs are flushed behind pluto's back.
before_gw1=$(routes_not_ours gw1) before_gw2=$(routes_not_ours gw2)
flushed=$EPOCHREALTIME
ip -n gw1 xfrm state flush
wait_for 60 bash -c "[ -z \"\$(ip -n gw1 route show 10.2.0.0/24)\" ]" >/dev/null || fail "gw1: route 10.2.0.0/24 still there 60 s after its tunnel's SAs were flushed"
at_gw=$(since "$flushed")
wait_router_route router 10.2.0.0/24 10.3.0.2 30 "gw1 withdrew 10.2.0.0/24" >/dev/null
at_router=$(since "$flushed")
ok "measured: gw1's SAs flushed: vtid removed 10.2.0.0/24 after ${at_gw} s (sa_grace_s 10), the router took gw2's route after ${at_router} s"
grep -q "vanished without a down-client" "$TB_RUN/gw1/vtid.log" || fail "gw1: vtid did not log the vanished SAs"
ok "gw1: vtid logged the tunnel's SAs as vanished"
[ "$(routes_not_ours gw1)" = "$before_gw1" ] || fail "gw1: routes of other protocols changed: $(diff <(echo "$before_gw1") <(routes_not_ours gw1) | tr '\n' ';')"
[ "$(routes_not_ours gw2)" = "$before_gw2" ] || fail "gw2: routes of other protocols changed"
ok "gw1, gw2: no route of another protocol changed"
tx2=$(dev_tx_packets gw2 vti-branch)
tx1=$(dev_tx_packets gw1 vti-branch)
expect_ping lanhost 10.3.4.10 10.2.0.1 "LAN host to the branch's LAN through gw2"
expect_device_counters_moved gw2 vti-branch "$tx2"
[ "$(dev_tx_packets gw1 vti-branch)" = "$tx1" ] || fail "gw1: vti-branch still sent packets after the failover"
ok "gw1: vti-branch sent nothing more"
bgp_exports_match gw1

# gw1's tunnel made again (pluto told, then the branch reconnects): the router goes back to gw1.
tb_whack gw1 --name branch --delete >/dev/null 2>&1 || true
tb_add gw1 branch
tb_down branch hq1
tb_add branch hq1
tb_up branch hq1 gw1
up=$EPOCHREALTIME
wait_router_route router 10.2.0.0/24 10.3.0.1 30 "gw1's tunnel back" >/dev/null
ok "measured: router back on gw1 for 10.2.0.0/24 $(since "$up") s after gw1's tunnel came up again"
tx1=$(dev_tx_packets gw1 vti-branch)
expect_ping lanhost 10.3.4.10 10.2.0.1 "LAN host to the branch's LAN through gw1 again"
expect_device_counters_moved gw1 vti-branch "$tx1"
