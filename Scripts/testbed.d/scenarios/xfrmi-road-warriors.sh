# A road-warrior gateway on an XFRM interface (ipsec-interface=2, pool 10.0.1.10-10.0.1.50) and
# two clients (policy-based, as in road-warriors), with the updown under test (the stock script by
# default): what pluto gives the gateway's updown for each instance (TESTBED_RECORD=1) and when
# ipsec2 comes and goes while clients come and go ("seen" lines). Needs a qemu kernel.
require_xfrmi
updown=$(tb_updown)
tb_switch
tb_host gw 192.0.2.2/24 10.3.0.1/24
tb_host road1 192.0.2.11/24
tb_host road2 192.0.2.12/24
server="config setup
conn rw
    left=192.0.2.2
    leftid=@east
    leftsubnet=0.0.0.0/0
    right=%any
    rightid=%any
    rightaddresspool=10.0.1.10-10.0.1.50
    leftmodecfgserver=yes
    rightmodecfgclient=yes
    narrowing=yes
    authby=secret
    ikev2=insist
    esp=aes_gcm256
    ipsec-interface=2
    leftupdown=$updown
    rightupdown=$updown"
secrets='@east @road1 : PSK "testbed-xfrmi-road-warrior-secret"
@east @road2 : PSK "testbed-xfrmi-road-warrior-secret"'
tb_pluto gw "$server" "$secrets"
tb_pluto road1 "$(rw_client_conf 192.0.2.11 road1 "$updown")" '@road1 @east : PSK "testbed-xfrmi-road-warrior-secret"'
tb_pluto road2 "$(rw_client_conf 192.0.2.12 road2 "$updown")" '@road2 @east : PSK "testbed-xfrmi-road-warrior-secret"'
tb_add gw rw
xfrmi_seen gw ipsec2 "template conn added, no client"
tb_add road1 rw
tb_add road2 rw
tb_up road1 rw gw
xfrmi_seen gw ipsec2 "road1 connected"
tb_up road2 rw gw
expect_xfrmi gw ipsec2 2
pool1=$(pool_address road1)
pool2=$(pool_address road2)
[ -n "$pool1" ] && [ -n "$pool2" ] && [ "$pool1" != "$pool2" ] || fail "the clients got no distinct pool addresses ('$pool1', '$pool2')"
ok "clients got pool addresses $pool1 and $pool2"
xfrmi_seen gw ipsec2 "road1 and road2 connected"
echo "seen - $TB_SCENARIO: gw: two clients: routes via ipsec2: $(ip -n gw route show dev ipsec2 | tr '\n' ';')"
echo "seen - $TB_SCENARIO: gw: two clients: XFRM policies and SAs with an if_id: $(xfrmi_policies gw)"
before=$(sa_counters gw)
tx=$(dev_tx_packets gw ipsec2)
expect_ping road1 "$pool1" 10.3.0.1 "road1 to the gateway's LAN through ipsec2"
expect_ping road2 "$pool2" 10.3.0.1 "road2 to the gateway's LAN through ipsec2"
expect_sa_counters_moved gw "$before"
expect_device_counters_moved gw ipsec2 "$tx"
tb_down road1 rw
wait_sas_gone gw 192.0.2.11
xfrmi_seen gw ipsec2 "road1 deleted its conn, road2 still up"
echo "seen - $TB_SCENARIO: gw: road1 gone: routes via ipsec2: $(ip -n gw route show dev ipsec2 | tr '\n' ';')"
expect_ping road2 "$pool2" 10.3.0.1 "road2 after road1 left"
tb_down road2 rw
wait_sas_gone gw
xfrmi_seen gw ipsec2 "both clients gone, template still added"
tb_down gw rw
xfrmi_seen gw ipsec2 "template conn deleted on the gateway"
