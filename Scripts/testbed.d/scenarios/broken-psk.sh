# Deliberately broken: the two gateways hold different pre-shared keys. This scenario must fail,
# saying that the tunnel was not established; TestbedTests checks that it does.
updown=$(tb_updown)
s2s_hosts
conf=$(s2s_conf "$updown" 0.0.0.0/0 0.0.0.0/0 no)
s2s_start "$conf" "one secret" "another secret"
tb_up west s2s east 20
