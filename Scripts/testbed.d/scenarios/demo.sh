# The newcomer's tour (Scripts/demo): a road-warrior gateway running vtid with vti-updown as its
# hook, two clients connecting with real libreswan, then what an operator sees: vtictl status,
# a ping through the tunnel, vtictl events.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "the demo needs vti-updown: set UPDOWN to its path"
tb_switch
tb_host gw 192.0.2.2/24 10.3.0.1/24
tb_host road1 192.0.2.11/24
tb_host road2 192.0.2.12/24
secret='PSK "testbed-demo-road-warrior-secret"'
tb_pluto gw "$(rw_server_conf "$(vtid_config gw)")" "@east @road1 : $secret
@east @road2 : $secret"
vtid_start gw
for n in 1 2; do tb_pluto road$n "$(rw_client_conf 192.0.2.1$n road$n "$UPDOWN")" "@road$n @east : $secret"; done
for host in gw road1 road2; do tb_add $host rw; done
tb_up road1 rw gw
tb_up road2 rw gw
pool1=$(pool_address road1)
echo
echo "gw# ping from road1's pool address $pool1 to the gateway's LAN (10.3.0.1), through the tunnel:"
ip netns exec road1 ping -c 3 -i 0.3 -I "$pool1" 10.3.0.1 | sed 's/^/    /' || fail "the ping through the tunnel failed"
echo
echo "gw# vtictl status"
vtictl_on gw status | sed 's/^/    /'
echo
echo "gw# vtictl events"
vtictl_on gw events | sed 's/^/    /'
echo
ok "the demo ran: vtid, the hook and two libreswan clients on a shared VTI"
