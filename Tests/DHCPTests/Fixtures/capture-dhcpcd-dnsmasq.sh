# Captures Fixtures/dhcpcd-dnsmasq-inform.pcap (as root; needs dnsmasq-base, dhcpcd-base, tcpdump). Output in /tmp/dhcpcap.
mkdir -p /tmp/dhcpcap
# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s (a process's readiness, never a fixed sleep).
wait_until() { local end=$(( $(date +%s) + $1 )); shift; until "$@"; do [ "$(date +%s)" -lt "$end" ] || { echo "timed out: $*" >&2; exit 1; }; sleep 0.1; done; }
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
# tcpdump says "listening on" once it captures; dnsmasq has port 67 bound once it answers.
wait_until 10 grep -q 'listening on' /tmp/dhcpcap/tcpdump.log
wait_until 10 sh -c '[ -n "$(ip netns exec dsrv ss -H -uln "sport = :67")" ]'
timeout 15 ip netns exec dcli dhcpcd -4 -B -1 -t 10 -f /dev/null -c /bin/true --inform=10.0.1.11/24 \
  -o classless_static_routes -o domain_name_servers -o domain_name -o domain_search -o ms_classless_static_routes vc >/tmp/dhcpcap/dhcpcd.log 2>&1
echo "dhcpcd exit $?"
# Both packets (INFORM and ACK) written (-U writes each as it comes) before tcpdump is stopped.
wait_until 10 sh -c '[ "$(tcpdump -r /tmp/dhcpcap/inform.pcap 2>/dev/null | wc -l)" -ge 2 ]'
kill $DM $TD; wait
ip netns del dsrv; ip netns del dcli
