# Past one gateway (issue 20), road warriors: two gateways of Profiles/bgp-gateways (pluto, vtid,
# BIRD) and a LAN router learning each client's /32 over BGP. A client on gw1 is reachable from a
# LAN host behind the router; it moves to gw2 and the router's route moves with it (timed from the
# new tunnel's tb_up to the route at the router). gw1's pluto is shut down with a client on it: the
# client's route leaves gw1's kernel (the hook's down-client through vtid), BGP withdraws it, and the
# client reconnects to gw2. gw1's vtid is killed (-9) with a client connected: by the project's rule
# (vtid never cuts off a live tunnel) its route stays, in gw1's kernel and at the router, while vtid
# is dead and after it is restarted, and no route of another protocol changes on either gateway.
# Last, gw1's shared device is set down by hand: the kernel drops its routes, BGP withdraws them, and
# vtid brings the device up with its routes again (self-healing), so BGP announces them again.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
secret=testbed-bgp-failover-secret
bgp_site "$secret"
pool_re='10\.10\.'
for n in 1 2; do
  tb_internet_host road$n 192.0.2.1$n/24
  tb_pluto road$n "$(rw_client_conf 192.0.2.1$n road$n "$UPDOWN" 198.51.100.1 10.3.0.0/16 gw1 @gw1.example.com
                     rw_client_conf 192.0.2.1$n road$n "$UPDOWN" 198.51.100.2 10.3.0.0/16 gw2 @gw2.example.com | sed 1d)" \
    "@road$n @gw1.example.com : PSK \"$secret\"
@road$n @gw2.example.com : PSK \"$secret\""
  tb_add road$n gw1
  tb_add road$n gw2
done
lan() { expect_ping lanhost 10.3.4.10 "$@"; }
since() { awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }'; }

# road1 on gw1: its /32 reaches the router over BGP; the LAN host reaches road1.
tb_up road1 gw1 gw1
up=$EPOCHREALTIME
pool1=$(pool_address road1 "$pool_re")
wait_router_route router "$pool1" 10.3.0.1 30 "road1 on gw1" >/dev/null
took=$(since "$up")
[[ $pool1 == 10.10.[0-3].* ]] || fail "road1's address $pool1 is not from gw1's pool"
ok "measured: router learned road1's $pool1/32 via gw1 ${took} s after road1's tunnel came up"
expect_route gw1 "$pool1" vti-rw
expect_route_protocol gw1 "$pool1" 157
bgp_exports_match gw1
bgp_exports_match gw2
lan "$pool1" "LAN host to road1 on gw1, routed by the router's BGP route"

# road1 leaves gw1 and connects to gw2: the route at the router moves.
down=$EPOCHREALTIME
tb_down road1 gw1
wait_router_lacks router "$pool1" 30 "road1 left gw1" >/dev/null
ok "measured: router withdrew $pool1 $(since "$down") s after road1 started deleting its tunnel to gw1 (whack --delete included)"
expect_no_route gw1 "$pool1" "road1 left gw1"
forget_pool_address road1 "$pool_re"
tb_add road1 gw1
tb_up road1 gw2 gw2
up=$EPOCHREALTIME
pool2=$(pool_address road1 "$pool_re")
wait_router_route router "$pool2" 10.3.0.2 30 "road1 on gw2" >/dev/null
took=$(since "$up")
[[ $pool2 == 10.10.[4-7].* ]] || fail "road1's address $pool2 on gw2 is not from gw2's pool"
ok "measured: router learned road1's new $pool2/32 via gw2 ${took} s after road1's tunnel to gw2 came up"
bgp_exports_match gw1
bgp_exports_match gw2
lan "$pool2" "LAN host to road1, now on gw2"

# road2 on gw1, then gw1's pluto shuts down: road2's route leaves gw1 and the router; road2 goes to gw2.
tb_up road2 gw1 gw1
pool3=$(pool_address road2 "$pool_re")
wait_router_route router "$pool3" 10.3.0.1 30 "road2 on gw1" >/dev/null
lan "$pool3" "LAN host to road2 on gw1"
before_gw1=$(routes_not_ours gw1) before_gw2=$(routes_not_ours gw2)
pid=$(cat "$TB_RUN/gw1/pluto.pid")  # pluto removes the file as it exits
stopped=$EPOCHREALTIME
tb_whack gw1 --shutdown >/dev/null 2>&1 || true
wait_for 20 bash -c "! kill -0 $pid" >/dev/null || fail "gw1: pluto did not exit within 20 s of whack --shutdown"
wait_for 20 bash -c "[ -z \"\$(ip -n gw1 route show $pool3)\" ]" >/dev/null || fail "gw1: road2's route $pool3 still there 20 s after pluto's shutdown"
at_gw=$(since "$stopped")
wait_router_lacks router "$pool3" 30 "gw1's pluto shut down" >/dev/null
at_router=$(since "$stopped")
ok "measured: gw1's pluto shut down with road2 on it: route gone from gw1 after ${at_gw} s, from the router after ${at_router} s"
grep -q "down-client" <(vtictl_on gw1 events) || fail "gw1: vtid recorded no down-client from the shutdown: $(vtictl_on gw1 events | tail -n 5)"
ok "gw1: the route left through the hook's down-client, recorded by vtid"
[ "$(routes_not_ours gw1)" = "$before_gw1" ] || fail "gw1: routes of other protocols changed: $(diff <(echo "$before_gw1") <(routes_not_ours gw1) | tr '\n' ';')"
[ "$(routes_not_ours gw2)" = "$before_gw2" ] || fail "gw2: routes of other protocols changed"
ok "gw1, gw2: no route of another protocol changed"
tb_down road2 gw1
forget_pool_address road2 "$pool_re"
tb_up road2 gw2 gw2
up=$EPOCHREALTIME
pool4=$(pool_address road2 "$pool_re")
wait_router_route router "$pool4" 10.3.0.2 30 "road2 on gw2" >/dev/null
took=$(since "$up")
ok "measured: router learned road2's $pool4/32 via gw2 ${took} s after it reconnected"
lan "$pool4" "LAN host to road2, reconnected to gw2"
tb_pluto_run gw1
tb_add gw1 rw
tb_add gw1 branch

# road2 back on gw1; gw1's vtid killed (-9): the live client's route stays everywhere.
tb_down road2 gw2
forget_pool_address road2 "$pool_re"
tb_add road2 gw1
tb_add road2 gw2
tb_up road2 gw1 gw1
pool5=$(pool_address road2 "$pool_re")
wait_router_route router "$pool5" 10.3.0.1 30 "road2 back on gw1" >/dev/null
ours_gw1=$(ip -n gw1 route show proto 157) ours_gw2=$(ip -n gw2 route show proto 157)
before_gw1=$(routes_not_ours gw1) before_gw2=$(routes_not_ours gw2)
kill -9 "$(cat "$TB_RUN/gw1/vtid.pid")"
# Nothing must happen: watched for 15 s, past sa_grace_s (10 s), every 0.5 s.
end=$(( ${EPOCHREALTIME%.*} + 15 ))
while [ "${EPOCHREALTIME%.*}" -lt $end ]; do
  [ "$(ip -n gw1 route show proto 157)" = "$ours_gw1" ] || fail "gw1: its routes of protocol 157 changed with vtid dead: $(ip -n gw1 route show proto 157 | tr '\n' ';')"
  router_route_via router "$pool5" 10.3.0.1 || fail "router: lost $pool5 via gw1 with gw1's vtid dead"
  sleep 0.5
done
ok "gw1: vtid killed -9: road2's route $pool5 stayed in gw1's kernel and at the router for 15 s"
lan "$pool5" "LAN host to road2 on gw1 with gw1's vtid dead"
lan "$pool2" "LAN host to road1 on gw2 meanwhile"
vtid_start gw1
expect_lease gw1 "$pool5" @road2
[ "$(ip -n gw1 route show proto 157)" = "$ours_gw1" ] || fail "gw1: routes of protocol 157 changed by vtid's restart: $(ip -n gw1 route show proto 157 | tr '\n' ';')"
[ "$(ip -n gw2 route show proto 157)" = "$ours_gw2" ] || fail "gw2: routes of protocol 157 changed"
[ "$(routes_not_ours gw1)" = "$before_gw1" ] || fail "gw1: routes of other protocols changed: $(diff <(echo "$before_gw1") <(routes_not_ours gw1) | tr '\n' ';')"
[ "$(routes_not_ours gw2)" = "$before_gw2" ] || fail "gw2: routes of other protocols changed: $(diff <(echo "$before_gw2") <(routes_not_ours gw2) | tr '\n' ';')"
ok "gw1, gw2: after vtid's restart the same routes of protocol 157, and no route of another protocol changed"
router_route_via router "$pool5" 10.3.0.1 || fail "router: lost $pool5 after gw1's vtid restarted"
bgp_exports_match gw1
bgp_exports_match gw2
lan "$pool5" "LAN host to road2 after gw1's vtid restarted"

# gw1's vti-rw set down by hand: the kernel drops road2's route with the device, BGP withdraws it;
# vtid brings the device up and the route back, and the router learns it anew (a new timestamp in
# its BIRD shows the withdrawal and the new announcement, however short the gap was).
learned_at() { birdc_on router show route "$pool5/32" | awk '/unicast \[gw1/ { print $4; exit }'; }
first=$(learned_at)
[ -n "$first" ] || fail "router: BIRD has no route $pool5/32 from gw1: $(birdc_on router show route "$pool5/32" | tr '\n' ' ')"
downed=$EPOCHREALTIME
ip -n gw1 link set vti-rw down
wait_for 20 bash -c "$(declare -f learned_at birdc_on router_route_via); TB_RUN=$TB_RUN pool5=$pool5; now=\$(learned_at); [ -n \"\$now\" ] && [ \"\$now\" != '$first' ] && router_route_via router $pool5 10.3.0.1" >/dev/null \
  || fail "router: $pool5 was not withdrawn and announced again within 20 s of gw1's vti-rw going down (BIRD: $(birdc_on router show route "$pool5/32" | tr '\n' ' '))"
ok "measured: gw1's vti-rw set down: router had $pool5 via gw1 again, announced anew (learned ${first%]} then $(learned_at | tr -d ']')), $(since "$downed") s later"
device_up() { grep -q "[<,]UP[,>]" <<<"$(ip -n gw1 link show vti-rw | head -n 1)"; }
device_up || fail "gw1: vti-rw is not up again"
expect_route gw1 "$pool5" vti-rw
lan "$pool5" "LAN host to road2 after gw1's device came back"
