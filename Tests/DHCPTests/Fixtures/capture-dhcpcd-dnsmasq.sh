# Captures Fixtures/dhcpcd-dnsmasq-inform.pcap (as root; needs dnsmasq-base, dhcpcd-base, tcpdump). Output in /tmp/dhcpcap.
mkdir -p /tmp/dhcpcap
set -x
ip netns del dsrv 2>/dev/null; ip netns del dcli 2>/dev/null
ip netns add dsrv; ip netns add dcli
ip link add vs netns dsrv type veth peer name vc netns dcli
ip -n dsrv addr add 10.0.1.1/24 dev vs; ip -n dsrv link set vs up; ip -n dsrv link set lo up
ip -n dcli link set vc address 02:00:00:00:01:0b
ip -n dcli link set vc up; ip -n dcli link set lo up
ip netns exec dsrv tcpdump -i vs -w /tmp/dhcpcap/inform.pcap -U udp port 67 or udp port 68 >/tmp/dhcpcap/tcpdump.log 2>&1 &
TD=$!
ip netns exec dsrv dnsmasq --no-daemon --port=0 --conf-file=/dev/null --bind-interfaces --interface=vs --dhcp-range=10.0.1.0,static,255.255.255.0 \
  --dhcp-option=121,10.3.0.0/24,10.0.1.1,192.168.50.0/23,10.0.1.1 --dhcp-option=249,10.3.0.0/24,10.0.1.1,192.168.50.0/23,10.0.1.1 \
  --dhcp-option=6,10.3.0.53 --dhcp-option=15,corp.example --dhcp-option=119,corp.example,example.com \
  --pid-file=/tmp/dhcpcap/dnsmasq.pid --dhcp-leasefile=/tmp/dhcpcap/leases --log-dhcp >/tmp/dhcpcap/dnsmasq.log 2>&1 &
DM=$!
sleep 1
timeout 15 ip netns exec dcli dhcpcd -4 -B -1 -t 10 -f /dev/null -c /bin/true --inform=10.0.1.11/24 \
  -o classless_static_routes -o domain_name_servers -o domain_name -o domain_search -o ms_classless_static_routes vc >/tmp/dhcpcap/dhcpcd.log 2>&1
echo "dhcpcd exit $?"
sleep 1
kill $DM $TD; wait
ip netns del dsrv; ip netns del dcli
