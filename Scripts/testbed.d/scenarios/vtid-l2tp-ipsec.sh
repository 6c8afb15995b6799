# L2TP/IPsec, the oldest road-warrior set-up (issue 21): Windows' built-in client speaks IKEv1 in
# transport mode to protect UDP 1701, and L2TP carries PPP inside it. The gateway runs
# Profiles/l2tp-ipsec: pluto (an IKEv1 transport conn for 17/1701, PSK) and xl2tpd as LNS with pppd
# (MS-CHAPv2, an address range), and vtid answering DHCPINFORM on the ppp links; the client runs pluto and xl2tpd as LAC with pppd, through the kernel's L2TP and PPP (l2tp_ppp,
# ppp_generic). The client gets a ppp link with an address from the range and reaches the LAN behind
# the gateway through it; vtid on the gateway sees the ppp link, matches it to the client's SA and
# shows it, and changes nothing of pppd's.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vtid: set UPDOWN to vti-updown's path"
. "$here/l2tp.sh"
l2tp_prepare 'road1 l2tp-gw "testbed-l2tp-chap-secret" *'

tb_switch
tb_host gw 192.0.2.2/24
tb_host road1 192.0.2.11/24
tb_lan_host lan gw 10.3.0.1/24 10.3.0.5/24

# The gateway runs Profiles/l2tp-ipsec as shipped (l2tp.sh).
profile="$here/../../Profiles/l2tp-ipsec"
secret='PSK "testbed-l2tp-ipsec-psk"'
l2tp_gateway "$profile" "$secret"
l2tp_client_pluto road1 192.0.2.11 "$secret"
tb_add road1 l2tp-psk
tb_up road1 l2tp-psk gw

# xl2tpd: the gateway's LNS (the profile's: 10.20.0.10-250, itself 10.20.0.1, MS-CHAPv2) and the
# client's LAC that dials it.
cat >"$TB_RUN/road1/xl2tpd.conf" <<CONF
[global]
port = 1701
[lac gw]
lns = 192.0.2.2
refuse pap = yes
require authentication = no
name = road1
pppoptfile = $TB_RUN/road1/options.xl2tpd
length bit = yes
CONF
cat >"$TB_RUN/road1/options.xl2tpd" <<CONF
name road1
noauth
refuse-pap
ipcp-accept-local
ipcp-accept-remote
noccp
nodefaultroute
mtu 1400
mru 1400
CONF
l2tpd_start() {  # l2tpd_start HOST
  local dir="$TB_RUN/$1"
  mkdir -p "$dir/xl2tpd"
  ip netns exec "$1" /usr/sbin/xl2tpd -D -c "$dir/xl2tpd.conf" -p "$dir/xl2tpd.pid" -C "$dir/xl2tpd/l2tp-control" \
    >>"$dir/xl2tpd.log" 2>&1 &
  disown
  wait_for 10 test -p "$dir/xl2tpd/l2tp-control" >/dev/null || fail "$1: xl2tpd made no control pipe: $(tail -n 5 "$dir/xl2tpd.log")"
}
l2tp_lns "$profile"
l2tpd_start road1
# With TESTBED_RECORD=1, record the kernel's notifications of the gateway's ppp link for
# Tests/NetlinkTests (the host kernel has no PPP).
if [ "${TESTBED_RECORD:-}" = 1 ]; then
  mkdir -p "$TESTBED_OUT/fixtures"
  rm -f "$TESTBED_OUT/fixtures/ppp-recorder.ready"
  ip netns exec gw /usr/bin/python3 "$here/netlink-record-ppp" "$TESTBED_OUT/fixtures" 60 >"$TB_RUN/recorder.log" 2>&1 &
  recorder=$!
  wait_for 20 test -e "$TESTBED_OUT/fixtures/ppp-recorder.ready" >/dev/null || fail "the netlink recorder did not start: $(cat "$TB_RUN/recorder.log")"
fi
echo "c gw" >"$TB_RUN/road1/xl2tpd/l2tp-control"
took=$(wait_for 30 sh -c "ip -n road1 -4 addr show dev ppp0 | grep -q 'inet 10.20.0.'") \
  || fail "road1: no ppp link with an address from 10.20.0.10-250 within 30 s: $(ip -n road1 -br addr; tail -n 20 "$TB_RUN/road1/xl2tpd.log"; tail -n 20 "$TB_RUN/gw/xl2tpd.log")"
client=$(ip -n road1 -4 -o addr show dev ppp0 | awk '{ sub(/\/.*/, "", $4); print $4 }')
ok "road1: ppp0 up with $client from the gateway's range after ${took} s (L2TP over IKEv1 transport mode, MS-CHAPv2)"
if [ -n "${recorder:-}" ]; then
  wait "$recorder" || fail "the netlink recorder saw no ppp link: $(cat "$TB_RUN/recorder.log")"
  ok "recorded the gateway's RTM_NEWLINK and RTM_NEWADDR of its ppp link into fixtures/"
fi
gw_ppp=$(ip -n gw -4 -o addr show | awk -v c="$client" '$2 ~ /^ppp/ && $0 ~ ("peer " c "/") { print $2; exit }')
[ -n "$gw_ppp" ] || fail "gw: no ppp link with peer $client: $(ip -n gw -4 -o addr show)"
ok "gw: $gw_ppp is the link to $client (pppd's)"
took=$(wait_for 10 grep -q "l2tp: ppp link $gw_ppp appeared" "$TB_RUN/gw/vtid.log") \
  || fail "gw: vtid did not notice $gw_ppp: $(tail -n 5 "$TB_RUN/gw/vtid.log")"
ok "gw: vtid noticed $gw_ppp from the kernel's link notification"

# pppd's state on the gateway, to compare after vtid has looked at it and reconciled.
ppp_state() { ip -n gw -o link show "$gw_ppp" | sed 's/ state [A-Z]*//'; ip -n gw -4 -o addr show dev "$gw_ppp"; ip -n gw route show table all dev "$gw_ppp"; }
before=$(ppp_state)

# Windows routes nothing into the link by itself (no class-based route with split tunnelling):
# nothing reaches the LAN until the DHCPINFORM's routes are installed.
ip netns exec road1 ping -c 1 -W 1 -I "$client" 10.3.0.5 >/dev/null 2>&1 \
  && fail "road1 reaches 10.3.0.5 before it asked for routes: the scenario proves nothing"
ok "road1: 10.3.0.5 is unreachable from $client before the DHCPINFORM (no route)"
took=$(wait_for 10 grep -q "answering DHCPINFORM on $gw_ppp for conn l2tp" "$TB_RUN/gw/vtid.log") \
  || fail "gw: vtid opened no DHCP socket on $gw_ppp: $(grep dhcp "$TB_RUN/gw/vtid.log")"
ok "gw: vtid answers DHCPINFORM on $gw_ppp (l2tp.dhcp_inform)"
counters=$(sa_counters gw)
answer=$(ip netns exec road1 /usr/bin/python3 "$here/dhcp-inform-client" inform --device ppp0 --client "$client" \
  --timeout 20 --install-routes 2>&1) || fail "road1: no DHCPACK over ppp0: $answer"
echo "$answer" | sed 's/^/    /'
ack=$(grep '"event": "ack"' <<<"$answer")
grep -q '"source": "10.3.0.1"' <<<"$ack" || fail "road1: the answer did not come from the gateway's LAN address: $ack"
grep -q '"routes_121": \[\["10.3.0.0/24", "10.3.0.1"\]\]' <<<"$ack" || fail "road1: option 121 is not 10.3.0.0/24 via 10.3.0.1: $ack"
grep -q '"routes_249": \[\["10.3.0.0/24", "10.3.0.1"\]\]' <<<"$ack" || fail "road1: option 249 is not 10.3.0.0/24 via 10.3.0.1: $ack"
grep -q '"dns": \["10.3.0.53"\]' <<<"$ack" && grep -q '"domain": "corp.example"' <<<"$ack" || fail "road1: DNS settings missing: $ack"
ok "road1: DHCPACK over ppp0 through IPsec from 10.3.0.1: options 121 and 249 say 10.3.0.0/24 via 10.3.0.1, DNS 10.3.0.53, domain corp.example"
expect_ping road1 "$client" 10.3.0.5 "the LAN host behind the gateway, over L2TP/IPsec, by the route the DHCPACK gave"
expect_sa_counters_moved gw "$counters"
expect_metric gw 'vtid_dhcp_inform_total{outcome="answered"}' 1 "one INFORM over the ppp link, one answer"

# vtictl on the gateway: one L2TP client, its ppp link, its address, its public peer and SA bytes.
vtictl_on gw status | sed 's/^/    /'
json=$(vtictl_json gw status) || fail "gw: vtictl status --json failed: $json"
line=$(/usr/bin/python3 -c '
import json, sys
clients = json.load(sys.stdin)["vtid"]["l2tpClients"]
for c in clients:
    print(c["device"], c["state"], c.get("address"), c.get("localAddress"), c.get("peerAddress"), c["associations"], c["inBytes"], c["outBytes"])
' <<<"$json") || fail "gw: status --json has no l2tpClients: $json"
read -r dev state address local peer sas in_bytes out_bytes <<<"$line"
[ "$dev $state $address $local $peer" = "$gw_ppp up $client 10.20.0.1 192.0.2.11" ] && [ "$sas" -ge 2 ] && [ "$in_bytes" -gt 0 ] && [ "$out_bytes" -gt 0 ] \
  || fail "gw: vtictl status --json says '$line', expected $gw_ppp up $client 10.20.0.1 192.0.2.11 with 2 SAs and bytes both ways"
ok "gw: vtictl status --json: L2TP client $client on $gw_ppp, public peer 192.0.2.11, $sas SAs, $in_bytes bytes in, $out_bytes out"
leases=$(vtictl_on gw leases) || fail "gw: vtictl leases failed: $leases"
echo "$leases" | sed 's/^/    /'
awk -v a="$client" -v d="$gw_ppp" '$1 == a && $2 == d && $3 == "up" && $4 == "192.0.2.11" { found = 1 } END { exit !found }' <<<"$leases" \
  || fail "gw: vtictl leases has no L2TP row for $client on $gw_ppp from 192.0.2.11"
ok "gw: vtictl leases lists the L2TP client"

# Read only: a reconcile pass leaves pppd's link, address and routes as they were.
vtictl_on gw reconcile >/dev/null || fail "gw: vtictl reconcile failed"
after=$(ppp_state)
[ "$before" = "$after" ] || fail "gw: $gw_ppp changed while vtid watched it: before: $before; after: $after"
ok "gw: $gw_ppp, its address and its routes are as pppd left them after vtid's reconcile"

# The client hangs up: pppd removes the link, vtid notices and stops listing it.
echo "d gw" >"$TB_RUN/road1/xl2tpd/l2tp-control"
took=$(wait_for 20 sh -c "! ip -n gw link show $gw_ppp") || fail "gw: $gw_ppp still there 20 s after the client hung up"
took=$(wait_for 10 grep -q "l2tp: ppp link $gw_ppp removed" "$TB_RUN/gw/vtid.log") \
  || fail "gw: vtid did not notice that $gw_ppp went: $(tail -n 5 "$TB_RUN/gw/vtid.log")"
json=$(vtictl_json gw status)
[ "$(/usr/bin/python3 -c 'import json, sys; print(len(json.load(sys.stdin)["vtid"]["l2tpClients"]))' <<<"$json")" = 0 ] \
  || fail "gw: vtictl status still lists L2TP clients after the hang-up: $json"
ok "gw: the client hung up; vtid logged $gw_ppp's removal and lists no L2TP client"
