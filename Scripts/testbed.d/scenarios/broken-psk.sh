# Deliberately broken: the two gateways hold different pre-shared keys. This scenario must fail,
# saying that the tunnel was not established; TestbedTests checks that it does.
updown=$(tb_updown)
s2s_hosts
conf=$(s2s_conf "$updown" 0.0.0.0/0 0.0.0.0/0 no)
tb_pluto west "$conf" '@west @east : PSK "one secret"'
tb_pluto east "$conf" '@west @east : PSK "another secret"'
tb_add west s2s
tb_add east s2s
tb_up west s2s east 20
