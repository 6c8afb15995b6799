# vtid repairs what others break and forgets what went away, with real pluto: the shared device is
# created before any client; deleted or set down by hand it comes back with its routes; a route
# deleted by hand comes back; another protocol's route on the device is left alone; a client whose
# SAs vanish behind pluto's back loses its route after the grace period; vtid killed (-9) while a
# client connects converges when restarted; pluto crashing (SAs flushed) leaves no stale routes, and
# the clients come back.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
tb_switch
tb_host gw 192.0.2.2/24 10.3.0.1/24
tb_host road1 192.0.2.11/24
tb_host road2 192.0.2.12/24
gw_updown=$(vtid_config gw "sa_grace_s: 3
reconcile_interval_s: 5")
secret='PSK "testbed-vtid-self-healing-secret"'
tb_pluto gw "$(rw_server_conf "$gw_updown")" "@east @road1 : $secret
@east @road2 : $secret"
vtid_start gw
expect_vti gw vti02 192.0.2.2 0.0.0.0 12
ok "gw: vti02 exists before any client connected (firewall rules can be loaded now)"
for n in 1 2; do tb_pluto road$n "$(rw_client_conf 192.0.2.1$n road$n "$UPDOWN")" "@road$n @east : $secret"; done
for host in gw road1 road2; do tb_add $host rw; done
tb_up road1 rw gw
tb_up road2 rw gw
pool1=$(pool_address road1) pool2=$(pool_address road2)
expect_ping road1 "$pool1" 10.3.0.1 "road1 before the damage"

routes_back() { ip -n gw route show "$pool1" | grep -q "dev vti02 proto 157" && ip -n gw route show "$pool2" | grep -q "dev vti02 proto 157"; }
device_up() { ip -n gw link show vti02 2>/dev/null | head -n 1 | grep -q "[<,]UP[,>]"; }

# A managed device deleted by hand.
ip -n gw link del vti02
took=$(wait_for 10 bash -c "$(declare -f routes_back device_up); pool1=$pool1 pool2=$pool2; device_up && routes_back") || fail "gw: vti02 back with its routes after being deleted did not happen within 10 s"
ok "gw: vti02 and both clients' routes were back $took s after the device was deleted"
expect_vti gw vti02 192.0.2.2 0.0.0.0 12
expect_mtu gw vti02 1406 "re-created with the shared device's MTU"
expect_sysctl gw net.ipv4.conf.vti02.disable_policy 1
expect_sysctl gw net.ipv4.conf.vti02.rp_filter 2
expect_ping road1 "$pool1" 10.3.0.1 "road1 through the re-created device"
expect_ping road2 "$pool2" 10.3.0.1 "road2 through the re-created device"

# Set down by hand.
ip -n gw link set vti02 down
took=$(wait_for 10 bash -c "$(declare -f routes_back device_up); pool1=$pool1 pool2=$pool2; device_up && routes_back") || fail "gw: vti02 up again, with its routes, after being set down did not happen within 10 s"
ok "gw: vti02 was up again with both routes $took s after being set down (the kernel drops a down device's routes)"

# One of our routes deleted by hand.
ip -n gw route del "$pool1" dev vti02
took=$(wait_for 10 bash -c "ip -n gw route show $pool1 | grep -q 'proto 157'") || fail "gw: the route to $pool1 back after being deleted did not happen within 10 s"
ok "gw: the route to $pool1 was back $took s after being deleted"

# Another protocol's route on our device survives every reconcile.
ip -n gw route add 10.99.0.0/24 dev vti02 proto static
vtictl_on gw reconcile >/dev/null || fail "gw: vtictl reconcile failed"
sleep 6  # past a periodic reconcile
grep -q "dev vti02 proto static" <<<"$(ip -n gw route show 10.99.0.0/24)" || fail "gw: a static route on vti02 was removed by vtid"
ok "gw: a route of another protocol on vti02 is left alone"

# road1's SAs deleted behind pluto's back: after the grace period its route goes; road2 stays.
ip -n gw xfrm state deleteall src 192.0.2.11
ip -n gw xfrm state deleteall dst 192.0.2.11
took=$(wait_for 15 bash -c "! ip -n gw route show $pool1 | grep -q vti02") || fail "gw: road1's route gone after its SAs vanished did not happen within 15 s"
ok "gw: road1's route ($pool1) was removed $took s after its SAs vanished (grace 3 s)"
grep -q "vanished without a down-client" "$TB_RUN/gw/vtid.log" || fail "gw: vtid did not log the vanished SAs"
ok "gw: vtid logged the SAs that vanished"
expect_metric gw vtid_tunnels_up 1 "road1's SAs lost, road2's there"
expect_metric gw vtid_clients_connected 1 "road1's lease ended with its SAs"
[ -n "${TB_DEBUG:-}" ] && { tail -n 30 "$TB_RUN/gw/vtid.log"; ip -n gw xfrm state | grep -E '^src|reqid'; }
expect_route gw "$pool2" vti02
expect_ping road2 "$pool2" 10.3.0.1 "road2 untouched"

# vtid killed (-9) while road1 reconnects; restarted, the kernel holds exactly what pluto has.
tb_down road1 rw
forget_pool_address road1
tb_add road1 rw
tb_up road1 rw gw &
up=$!
sleep 0.5
kill -9 "$(cat "$TB_RUN/gw/vtid.pid")"
wait $up || fail "road1 could not reconnect while vtid was being killed"
vtid_start gw
pool1=$(pool_address road1)
tb_whack gw --trafficstatus >"$TB_RUN/gw/traffic.log" 2>&1 || true
expected=$(grep -oE "lease=10\.0\.1\.[0-9]+" "$TB_RUN/gw/traffic.log" | sed 's/lease=//' | sort | tr '\n' ' ')
wait_for 10 bash -c "[ \"\$(ip -n gw route show proto 157 dev vti02 | awk '{ print \$1 }' | sort | tr '\n' ' ')\" = '$expected' ]" >/dev/null \
  || fail "gw: routes of proto 157 ($(ip -n gw route show proto 157 dev vti02 | awk '{ print $1 }' | tr '\n' ' ')) are not pluto's leases ($expected) within 10 s"
ok "gw: after kill -9 and restart, vtid's routes are exactly pluto's clients ($expected)"
leases=$(vtictl_on gw leases --connected | awk 'NR > 1 { print $1 }' | sort | tr '\n' ' ')
[ "$leases" = "$expected" ] || fail "gw: vtid's connected leases ($leases) differ from pluto's ($expected)"
ok "gw: vtid's lease table agrees with pluto"
expect_ping road1 "$pool1" 10.3.0.1 "road1 after vtid's crash"

# pluto crashes; the kernel's SAs and policies go with it (flushed, as at a restart).
kill -9 "$(cat "$TB_RUN/gw/pluto.pid")"
ip -n gw xfrm state flush
ip -n gw xfrm policy flush
took=$(wait_for 15 bash -c "[ -z \"\$(ip -n gw route show proto 157 dev vti02)\" ]") || fail "gw: no route of proto 157 left on vti02 after pluto's SAs were flushed did not happen within 15 s"
ok "gw: no stale routes $took s after pluto's SAs were flushed"
ip -n gw link show vti02 >/dev/null 2>&1 || fail "gw: vti02 went away with pluto"
ok "gw: vti02 stays while pluto is down"
tb_pluto_run gw
tb_add gw rw
for n in 1 2; do tb_down road$n rw; forget_pool_address road$n; tb_add road$n rw; tb_up road$n rw gw; done
pool1=$(pool_address road1) pool2=$(pool_address road2)
expect_route gw "$pool1" vti02
expect_route gw "$pool2" vti02
expect_ping road1 "$pool1" 10.3.0.1 "road1 after pluto's restart"
expect_ping road2 "$pool2" 10.3.0.1 "road2 after pluto's restart"
count=$(ip -n gw route show proto 157 dev vti02 | wc -l)
[ "$count" = 2 ] || fail "gw: $count routes of proto 157 on vti02, expected the 2 clients': $(ip -n gw route show proto 157 dev vti02 | tr '\n' ';')"
ok "gw: exactly the two clients' routes after pluto's restart"
