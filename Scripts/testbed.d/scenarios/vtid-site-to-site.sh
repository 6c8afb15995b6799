# Site-to-site through vtid on both gateways: vtid creates the device before the tunnel (so firewall
# rules can be loaded first), the hook's events set MTU and routes through vtid; deleting the conn
# in pluto keeps the device (it is still configured); removing the conn from ipsec.conf and
# reloading vtid removes it.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
s2s_hosts
west_updown=$(vtid_config west)
east_updown=$(vtid_config east)
# One conn text per gateway: each hook talks to its own vtid.
tb_pluto west "$(s2s_conf "$west_updown" 10.1.0.0/24 10.2.0.0/24 yes)" '@west @east : PSK "testbed-vtid-s2s"'
tb_pluto east "$(s2s_conf "$east_updown" 10.1.0.0/24 10.2.0.0/24 yes)" '@west @east : PSK "testbed-vtid-s2s"'
vtid_start west
vtid_start east
expect_vti west vti01 192.0.2.1 192.0.2.2 5
ok "west: vti01 exists before the tunnel (pre-created by vtid from ipsec.conf)"
tb_add west s2s
tb_add east s2s
s2s_up
expect_route west 10.2.0.0/24 vti01
expect_route_protocol west 10.2.0.0/24 157
expect_route east 10.1.0.0/24 vti01
expect_mtu west vti01 1446 "AES-GCM-16 over IPv4 without NAT-T"
expect_sysctl west net.ipv4.conf.vti01.disable_policy 1
expect_sysctl west net.ipv4.conf.vti01.rp_filter 2
expect_ping west 10.1.0.1 10.2.0.1 "west LAN to east LAN, routed by vtid"
# The conn's traffic: the peer and its SAs' counters (JSON: table cells may hold spaces).
traffic=$(vtictl_json west status | grep -o '"traffic":{[^}]*}') || fail "west: vtictl status --json has no traffic for s2s"
grep -q '"peers":\["192.0.2.2"\]' <<<"$traffic" || fail "west: conn s2s's peer is not east: $traffic"
grep -Eq '"inBytes":[1-9][0-9]*,"outBytes":[1-9][0-9]*,"inPackets":[1-9][0-9]*,"outPackets":[1-9]' <<<"$traffic" \
  || fail "west: conn s2s's SAs carried no bytes or packets: $traffic"
ok "west: vtictl status shows s2s towards east with its SAs' counters: $traffic"
applied=$(vtictl_on west events | awk '$5 == "vtid" && $6 == "applied"' | wc -l)
[ "$applied" -ge 2 ] || fail "west: vtid applied only $applied events: $(vtictl_on west events)"
ok "west: vtid applied the hook's events ($applied)"
tb_down west s2s
tb_down east s2s
sleep 1
ip -n west link show vti01 >/dev/null 2>&1 || fail "west: vti01 went with the conn although it is still in ipsec.conf"
ok "west: vti01 stays after whack --delete (the conn is still configured)"
expect_no_route west 10.2.0.0/24 "the tunnel is down"
printf 'config setup\n' >"$TB_RUN/west/ipsec.conf"
# Without the conn vtid would delete every device it manages: refused unless the operator says so.
refusal=$(vtictl_on west reload 2>&1) && fail "west: a reload that removes every managed device was accepted: $refusal"
grep -q -- "--allow-remove" <<<"$refusal" || fail "west: the refused reload does not say how to confirm: $refusal"
ip -n west link show vti01 >/dev/null 2>&1 || fail "west: vti01 went although the reload was refused"
ok "west: a reload that would delete every managed device is refused and says --allow-remove; vti01 stays"
vtictl_on west reload --allow-remove >/dev/null || fail "west: vtictl reload --allow-remove failed"
expect_no_link west vti01 "the conn left ipsec.conf and vtid reloaded"
