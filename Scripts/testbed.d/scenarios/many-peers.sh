# One gateway, three peers, one VTI device and one unique mark per peer (vti11..13, marks 11..13).
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
for i in 1 2 3; do
  expect_vti hub "vti1$i" 192.0.2.2 "192.0.2.2$i" "1$i"
  ip -n hub route add "10.2$i.0.0/24" dev "vti1$i"
  ip -n "peer$i" route add 10.20.0.0/24 dev vti01
done
before=$(sa_bytes hub)
for i in 1 2 3; do
  tx=$(dev_tx_packets hub "vti1$i")
  expect_ping hub 10.20.0.1 "10.2$i.0.1" "hub LAN to peer$i LAN through vti1$i"
  expect_device_counters_moved hub "vti1$i" "$tx"
done
expect_sa_counters_moved hub "$before"
