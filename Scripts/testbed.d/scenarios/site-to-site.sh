# Two gateways, IKEv2 PSK, one VTI each (mark 5), routes to the other LAN added by hand
# (vti-routing=no); LAN-to-LAN traffic must flow through the VTI devices and the SAs.
updown=$(tb_updown)
s2s_hosts
conf=$(s2s_conf "$updown" 0.0.0.0/0 0.0.0.0/0 no)
secrets='@west @east : PSK "testbed-site-to-site-secret"'
tb_pluto west "$conf" "$secrets"
tb_pluto east "$conf" "$secrets"
tb_add west s2s
tb_add east s2s
tb_up west s2s east
expect_vti west vti01 192.0.2.1 192.0.2.2 5
expect_vti east vti01 192.0.2.2 192.0.2.1 5
ip -n west route add 10.2.0.0/24 dev vti01
ip -n east route add 10.1.0.0/24 dev vti01
before=$(sa_bytes west)
tx=$(dev_tx_packets west vti01)
expect_ping west 10.1.0.1 10.2.0.1 "west LAN to east LAN through vti01"
expect_ping east 10.2.0.1 10.1.0.1 "east LAN to west LAN through vti01"
expect_sa_counters_moved west "$before"
expect_device_counters_moved west vti01 "$tx"
