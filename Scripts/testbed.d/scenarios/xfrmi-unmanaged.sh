# libreswan 5.2's `ipsec-interface-managed=no` (config setup): the XFRM interface is made
# beforehand, by someone else (here this script, later vtid), under a name of its own (vpn0, if_id
# 1), and pluto only installs SAs and policies with that if_id. The updown is a recorder over
# /bin/true, so routes are this script's too, as they would be vtid's. Records what pluto gives
# the updown (TESTBED_RECORD=1) and shows that pluto makes, changes and deletes no device.
# Needs libreswan 5.2 (--root debian13) and a qemu kernel.
ipsec --version 2>/dev/null | grep -q 'Libreswan 5\.' || fail "ipsec-interface-managed= needs libreswan 5.2 (Scripts/testbed --kernel debian12 --root debian13)"
updown=$(UPDOWN=/bin/true tb_updown)
s2s_hosts
for host in west east; do
  ip -n "$host" link add vpn0 type xfrm dev eth0 if_id 1 || fail "$host: cannot make the XFRM interface vpn0"
  ip -n "$host" link set vpn0 up
done
conf="config setup
    ipsec-interface-managed=no
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
secret='@west @east : PSK "testbed-xfrmi-unmanaged-secret"'
tb_pluto west "$conf" "$secret"
tb_pluto east "$conf" "$secret"
tb_add west s2s
tb_add east s2s
xfrmi_seen west ipsec1 "unmanaged, conn added"
tb_up west s2s east
xfrmi_seen west ipsec1 "unmanaged, tunnel up"
xfrmi_seen west vpn0 "unmanaged, tunnel up"
echo "seen - $TB_SCENARIO: west: tunnel up: XFRM policies and SAs with an if_id: $(xfrmi_policies west)"
echo "seen - $TB_SCENARIO: west: tunnel up: routes via vpn0 (none made by pluto): $(ip -n west route show dev vpn0 | tr '\n' ';')"
ip -n west route add 10.2.0.0/24 dev vpn0
ip -n east route add 10.1.0.0/24 dev vpn0
before=$(sa_counters west)
tx=$(dev_tx_packets west vpn0)
expect_ping west 10.1.0.1 10.2.0.1 "west LAN to east LAN through vpn0, routed by this script"
expect_sa_counters_moved west "$before"
expect_device_counters_moved west vpn0 "$tx"
tb_down west s2s
tb_down east s2s
wait_sas_gone west
xfrmi_seen west vpn0 "unmanaged, conn deleted"
xfrmi_seen west ipsec1 "unmanaged, conn deleted"
