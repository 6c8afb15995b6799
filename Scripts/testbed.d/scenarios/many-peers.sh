# One gateway (hub), three peers, one VTI device and one unique mark per peer on the hub (vti11..13,
# marks 11..13; a VTI device needs a concrete remote, so peers can't share one); all three LANs
# reachable both ways, each through its own device.
updown=$(tb_updown)
tb_switch
tb_host hub 192.0.2.2/24 10.20.0.1/24
secrets_hub=""
conf_hub="config setup"
for i in 1 2 3; do
  tb_host "peer$i" "192.0.2.2$i/24" "10.2$i.0.1/24"
  conf_hub="$conf_hub
conn peer$i
    left=192.0.2.2
    leftid=@hub
    right=192.0.2.2$i
    rightid=@peer$i
    authby=secret
    ikev2=insist
    esp=aes_gcm256
    leftsubnet=0.0.0.0/0
    rightsubnet=0.0.0.0/0
    mark=1$i/0xffffffff
    vti-interface=vti1$i
    vti-routing=no
    leftupdown=$updown
    rightupdown=$updown"
  secrets_hub="$secrets_hub
@hub @peer$i : PSK \"testbed-many-peers-secret-$i\""
done
tb_pluto hub "$conf_hub" "$secrets_hub"
for i in 1 2 3; do
  tb_pluto "peer$i" "config setup
conn hub
    left=192.0.2.2$i
    leftid=@peer$i
    right=192.0.2.2
    rightid=@hub
    authby=secret
    ikev2=insist
    esp=aes_gcm256
    leftsubnet=0.0.0.0/0
    rightsubnet=0.0.0.0/0
    mark=1$i/0xffffffff
    vti-interface=vti01
    vti-routing=no
    leftupdown=$updown
    rightupdown=$updown" "@peer$i @hub : PSK \"testbed-many-peers-secret-$i\""
  tb_add hub "peer$i"
  tb_add "peer$i" hub
done
for i in 1 2 3; do tb_up "peer$i" hub hub; done
# Each peer has its own device on the hub, keyed by its own mark; each peer's vti01 has its mark.
for i in 1 2 3; do
  expect_vti hub "vti1$i" 192.0.2.2 "192.0.2.2$i" "1$i"
  expect_vti "peer$i" vti01 "192.0.2.2$i" 192.0.2.2 "1$i"
  ip -n hub route add "10.2$i.0.0/24" dev "vti1$i"
  ip -n "peer$i" route add 10.20.0.0/24 dev vti01
done
before=$(sa_counters hub)
for i in 1 2 3; do
  tx=$(dev_tx_packets hub "vti1$i")
  expect_ping hub 10.20.0.1 "10.2$i.0.1" "hub LAN to peer$i LAN through vti1$i"
  expect_ping "peer$i" "10.2$i.0.1" 10.20.0.1 "peer$i LAN to hub LAN"
  expect_device_counters_moved hub "vti1$i" "$tx"
done
expect_sa_counters_moved hub "$before"

# One peer leaves (its conn deleted on the hub): its LAN is cut off, the others keep working.
tb_down hub peer2
expect_no_ping hub 10.20.0.1 10.22.0.1 "peer2's conn was deleted on the hub"
expect_ping hub 10.20.0.1 10.21.0.1 "peer1 unaffected by peer2 leaving"
expect_ping hub 10.20.0.1 10.23.0.1 "peer3 unaffected by peer2 leaving"
if ip -n hub link show vti12 >/dev/null 2>&1; then
  note "hub: vti12 is still there after its conn was deleted (the updown under test leaves devices behind)"
else
  ok "hub: vti12 is gone with its conn"
fi
