# Deliberately broken: the two gateways hold different pre-shared keys. This scenario must fail,
# saying that the tunnel was not established; TestbedTests checks that it does.
updown=$(tb_updown)
tb_switch
tb_host west 192.0.2.1/24 10.1.0.1/24
tb_host east 192.0.2.2/24 10.2.0.1/24
conf="config setup
conn s2s
    left=192.0.2.1
    leftid=@west
    right=192.0.2.2
    rightid=@east
    authby=secret
    ikev2=insist
    leftsubnet=0.0.0.0/0
    rightsubnet=0.0.0.0/0
    mark=5/0xffffffff
    vti-interface=vti01
    vti-routing=no
    leftupdown=$updown
    rightupdown=$updown"
tb_pluto west "$conf" '@west @east : PSK "one secret"'
tb_pluto east "$conf" '@west @east : PSK "another secret"'
tb_add west s2s
tb_add east s2s
tb_up west s2s east 20
