# A road-warrior gateway moved from its VTI to an XFRM interface by following `vtictl migrate`'s
# plan while two clients are connected, then back (qemu kernels only). The diff vtictl prints is
# applied with patch as printed, then the printed steps: vtictl reload, ipsec auto --replace; the
# clients initiate again. Each client is back within a measured time, routed into ipsec2, the old
# vti02 is deleted by vtid, a route of another protocol is untouched; the rollback (patch -R, the
# same steps) brings both back on vti02 and ipsec2 goes.
require_xfrmi
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
tb_switch
tb_host gw 192.0.2.2/24 10.3.0.1/24
tb_host road1 192.0.2.11/24
tb_host road2 192.0.2.12/24
gw_updown=$(vtid_config gw)
secret='PSK "testbed-vtid-migrate-secret"'
tb_pluto gw "$(rw_server_conf "$gw_updown")" "@east @road1 : $secret
@east @road2 : $secret"
vtid_start gw
for n in 1 2; do tb_pluto road$n "$(rw_client_conf 192.0.2.1$n road$n "$UPDOWN")" "@road$n @east : $secret"; done
for host in gw road1 road2; do tb_add $host rw; done
tb_up road1 rw gw
tb_up road2 rw gw
pool1=$(pool_address road1) pool2=$(pool_address road2)
expect_route gw "$pool1" vti02
expect_route gw "$pool2" vti02
# Someone else's route on the gateway: no step of the migration may touch it.
ip -n gw route add 10.8.0.0/24 via 10.3.0.254 proto static || fail "gw: cannot add the static route"
# patch: the root's own, or (the minimal Debian 13 root has none) the host's, which the guest mounts.
PATCH=$(command -v patch || ls /run/testbed-host/usr/bin/patch 2>/dev/null) || fail "patch is needed (Debian package patch, on the host)"
version=$(ipsec --version | sed -n 's/.*Libreswan \([0-9]*\.[0-9]*\).*/\1/p')

# client_back N DEVICE: roadN has a lease (as its pluto says now: a reconnect may bring another),
# the gateway routes it into DEVICE, and it reaches the gateway's LAN from it.
client_back() {
  local lease
  lease=$(tb_whack road$1 --trafficstatus 2>/dev/null | sed -n 's/.*lease=\([0-9.]*\)\/32.*/\1/p' | head -n 1)
  [ -n "$lease" ] && grep -q "dev $2 " <<<"$(ip -n gw route show "$lease")" && ip netns exec road$1 ping -c 1 -W 1 -I "$lease" 10.3.0.1 >/dev/null 2>&1
}

# switch GOAL DEVICE: the printed steps after the patch (vtictl reload, ipsec auto --replace rw),
# the clients reconnecting; each must reach the LAN through DEVICE within 40 s.
switch() {
  local goal=$1 device=$2 start=$EPOCHREALTIME
  vtictl_on gw reload >/dev/null || fail "gw: vtictl reload failed ($goal)"
  ip netns exec gw ipsec auto --config "$TB_RUN/gw/ipsec.conf" --ctlsocket "$TB_RUN/gw/pluto.ctl" --replace rw >/dev/null \
    || fail "gw: ipsec auto --replace rw failed ($goal)"
  # The gateway's replace deleted the clients' SAs. libreswan 5.x clients revive the conn on
  # their own (an extra initiate would ask for a second Child SA, refused with TS_UNACCEPTABLE).
  # 4.10 clients revive too ("must remain up per local policy"), but with a lease the replaced
  # pool may hand out differently they keep the old address and routes (no updown call for the
  # new one was seen): they delete and add their conn and connect afresh, as a user would.
  if [[ $version == 4.* ]]; then
    for n in 1 2; do
      tb_down road$n rw
      tb_add road$n rw
      tb_up road$n rw gw
    done
  fi
  for n in 1 2; do
    wait_for 40 client_back $n "$device" >/dev/null \
      || fail "gw: road$n not back through $device within 40 s ($goal): road$n: $(tb_whack road$n --trafficstatus 2>&1 | tail -n 1); road$n routes: $(ip -n road$n route | tr '\n' ';'); road$n addresses: $(ip -n road$n -4 -o addr | awk '{ print $4 }' | tr '\n' ' '); gw SAs with road$n: $(ip -n gw xfrm state | grep -c "192.0.2.1$n"); gw routes: $(ip -n gw route | grep proto | tr '\n' ';')"
  done
  ok "both clients back through $device in $(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s after the reload and replace ($goal)"
}

# The plan, then its diff applied exactly as printed (patch -p1 -d /).
plan=$(ip netns exec gw "$VTICTL" migrate --ipsec-conf "$TB_RUN/gw/ipsec.conf" --libreswan "$version") || fail "gw: vtictl migrate failed: $plan"
echo "$plan" | sed 's/^/    /'
grep -q 'vti02 -> ipsec2' <<<"$plan" || fail "gw: the plan does not move vti02 to ipsec2"
ip netns exec gw "$VTICTL" migrate --diff --ipsec-conf "$TB_RUN/gw/ipsec.conf" --libreswan "$version" >"$TB_RUN/gw/vti-to-xfrm.diff" \
  || fail "gw: vtictl migrate --diff failed"
cp "$TB_RUN/gw/ipsec.conf" "$TB_RUN/gw/ipsec.conf.vti"
applied=$("$PATCH" -p1 -d / --dry-run <"$TB_RUN/gw/vti-to-xfrm.diff" 2>&1 && "$PATCH" -p1 -d / <"$TB_RUN/gw/vti-to-xfrm.diff" 2>&1) \
  || fail "gw: the printed diff does not apply: $applied"
grep -q '^    ipsec-interface=2$' "$TB_RUN/gw/ipsec.conf" || fail "gw: the patched ipsec.conf has no ipsec-interface=2"
checked=$(ip netns exec gw "$VTICTL" check --config "$TB_RUN/gw/vtid.yaml" 2>&1) || fail "gw: vtictl check after the patch: $checked"
ok "gw: the printed diff applied; vtictl check: ${checked##*$'\n'}"
switch "VTI to XFRM interface" ipsec2
expect_xfrmi gw ipsec2 2
expect_route_protocol gw "$(tb_whack road1 --trafficstatus | sed -n 's/.*lease=\([0-9.]*\)\/32.*/\1/p' | head -n 1)" 157
wait_for 15 sh -c "! ip -n gw link show vti02" >/dev/null || fail "gw: vti02 is still there 15 s after its tunnels moved: $(tail -n 3 "$TB_RUN/gw/vtid.log")"
ok "gw: vtid deleted vti02 once no SA with its keys was up"
expect_mtu gw ipsec2 1406 "shared device: worst common suite with NAT-T"
grep -q 'proto static' <<<"$(ip -n gw route show 10.8.0.0/24)" || fail "gw: the static route 10.8.0.0/24 was touched"
ok "gw: the static route 10.8.0.0/24 is untouched"

# The rollback: the same diff reversed, the same steps.
applied=$("$PATCH" -R -p1 -d / <"$TB_RUN/gw/vti-to-xfrm.diff" 2>&1) || fail "gw: patch -R of the printed diff failed: $applied"
cmp -s "$TB_RUN/gw/ipsec.conf" "$TB_RUN/gw/ipsec.conf.vti" || fail "gw: patch -R did not restore ipsec.conf byte for byte"
ok "gw: patch -R restored ipsec.conf byte for byte"
switch "XFRM interface back to VTI" vti02
expect_vti gw vti02 192.0.2.2 0.0.0.0 12
wait_for 15 sh -c "! ip -n gw link show ipsec2" >/dev/null || fail "gw: ipsec2 is still there 15 s after the rollback: $(tail -n 3 "$TB_RUN/gw/vtid.log")"
ok "gw: ipsec2 is gone after the rollback"
grep -q 'proto static' <<<"$(ip -n gw route show 10.8.0.0/24)" || fail "gw: the static route 10.8.0.0/24 was touched"
ok "gw: the static route 10.8.0.0/24 is untouched after the rollback"
