# Site-to-site over an XFRM interface (ipsec-interface=1: pluto makes and owns ipsec1), with the
# updown under test (the stock script by default). What it is for: recording what pluto gives the
# updown for such a conn (TESTBED_RECORD=1) and seeing when ipsec1 comes and goes ("seen" lines,
# observations rather than checks). Needs a qemu kernel: UML has no XFRM interfaces.
require_xfrmi
updown=$(tb_updown)
s2s_hosts
conf="config setup
conn s2s
    left=192.0.2.1
    leftid=@west
    leftsubnet=10.1.0.0/24
    right=192.0.2.2
    rightid=@east
    rightsubnet=10.2.0.0/24
    authby=secret
    ikev2=insist
    esp=aes_gcm256
    ipsec-interface=1
    leftupdown=$updown
    rightupdown=$updown"
secret='@west @east : PSK "testbed-xfrmi-site-to-site-secret"'
tb_pluto west "$conf" "$secret"
tb_pluto east "$conf" "$secret"
xfrmi_seen west ipsec1 "pluto running, no conn added"
tb_add west s2s
tb_add east s2s
xfrmi_seen west ipsec1 "conn added (ipsec auto --add)"
xfrmi_seen east ipsec1 "conn added (ipsec auto --add)"
tb_up west s2s east
expect_xfrmi west ipsec1 1
expect_xfrmi east ipsec1 1
xfrmi_seen west ipsec1 "tunnel up"
echo "seen - $TB_SCENARIO: west: tunnel up: XFRM policies and SAs with an if_id: $(xfrmi_policies west)"
echo "seen - $TB_SCENARIO: west: tunnel up: routes via ipsec1: $(ip -n west route show dev ipsec1 | tr '\n' ';')"
before=$(sa_counters west)
tx=$(dev_tx_packets west ipsec1)
expect_ping west 10.1.0.1 10.2.0.1 "west LAN to east LAN through ipsec1"
expect_ping east 10.2.0.1 10.1.0.1 "east LAN to west LAN through ipsec1"
expect_sa_counters_moved west "$before"
expect_device_counters_moved west ipsec1 "$tx"
# A mere disconnect: the Child SA goes, the conn stays (as in hook-site-to-site).
tb_whack west --name s2s --terminate >/dev/null 2>&1 || true
tb_whack east --name s2s --terminate >/dev/null 2>&1 || true
wait_sas_gone west
wait_sas_gone east
xfrmi_seen west ipsec1 "conn terminated (still added)"
xfrmi_seen east ipsec1 "conn terminated (still added)"
echo "seen - $TB_SCENARIO: west: conn terminated: routes via ipsec1: $(ip -n west route show dev ipsec1 2>/dev/null | tr '\n' ';')"
tb_up west s2s east
xfrmi_seen west ipsec1 "tunnel up again"
tb_down west s2s
tb_down east s2s
wait_sas_gone west
wait_sas_gone east
xfrmi_seen west ipsec1 "conn deleted (whack --delete)"
xfrmi_seen east ipsec1 "conn deleted (whack --delete)"
echo "seen - $TB_SCENARIO: west: conn deleted: XFRM policies and SAs with an if_id: $(xfrmi_policies west)"
