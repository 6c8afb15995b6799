# Two gateways, IKEv2 PSK, one VTI each (mark 5), routes to the other LAN added by hand
# (vti-routing=no: the stock updown does not route); LAN-to-LAN traffic must flow through the VTI
# devices and the SAs.
updown=$(tb_updown)
s2s_hosts
conf=$(s2s_conf "$updown" 0.0.0.0/0 0.0.0.0/0 no)
s2s_start "$conf" testbed-site-to-site-secret
s2s_up
ip -n west route add 10.2.0.0/24 dev vti01
ip -n east route add 10.1.0.0/24 dev vti01
before=$(sa_counters west)
tx_west=$(dev_tx_packets west vti01)
tx_east=$(dev_tx_packets east vti01)
expect_ping west 10.1.0.1 10.2.0.1 "west LAN to east LAN through vti01"
expect_ping east 10.2.0.1 10.1.0.1 "east LAN to west LAN through vti01"
expect_sa_counters_moved west "$before"
expect_device_counters_moved west vti01 "$tx_west"
expect_device_counters_moved east vti01 "$tx_east"
