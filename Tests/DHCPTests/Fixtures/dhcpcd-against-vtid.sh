# By hand (root; dhcpcd-base, tcpdump): vtid answers dhcpcd --inform through a veth in two throwaway
# namespaces (/tmp/dhcpman holds ipsec.conf and vtid.yaml as in README "DHCPINFORM"); dhcpcd installs both routes.
B=${B:-$(cd "$(dirname "$0")/../../.." && pwd)/.build/debug}
# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s (a process's readiness, never a fixed sleep).
wait_until() { local end=$(( $(date +%s) + $1 )); shift; until "$@"; do [ "$(date +%s)" -lt "$end" ] || { echo "timed out: $*" >&2; exit 1; }; sleep 0.1; done; }
ip netns del dA 2>/dev/null; ip netns del dB 2>/dev/null
ip netns add dA; ip netns add dB
ip -n dA link set lo up; ip -n dB link set lo up
ip -n dA link add rwdev type veth peer name rwpeer netns dB
ip -n dA link set rwdev up
ip -n dA link add lan0 type veth peer name lan0p; ip -n dA link set lan0p up; ip -n dA addr add 10.3.0.1/24 dev lan0; ip -n dA link set lan0 up
ip -n dB link set rwpeer address 02:00:00:00:01:0b; ip -n dB link set rwpeer up
ip -n dA route add 10.0.1.11/32 dev rwdev
ip netns exec dA $B/vtid --config /tmp/dhcpman/vtid.yaml > /tmp/dhcpman/vtid.log 2>&1 &
VT=$!
ip netns exec dA tcpdump -i rwdev -w /tmp/dhcpman/vtid.pcap -U udp port 67 or udp port 68 >/tmp/dhcpman/tcpdump.log 2>&1 &
TD=$!
# tcpdump says "listening on" once it captures; vtid answers once its DHCP socket has port 67.
wait_until 10 grep -q 'listening on' /tmp/dhcpman/tcpdump.log
wait_until 10 sh -c '[ -n "$(ip netns exec dA ss -H -uln "sport = :67")" ]'
ip -n dB addr add 10.0.1.11/32 dev rwpeer; ip -n dB route add 10.3.0.1/32 dev rwpeer
timeout 15 ip netns exec dB dhcpcd -4 -B -1 -t 10 -f /dev/null -c /bin/true --inform=10.0.1.11/32 \
  -o classless_static_routes -o domain_name_servers -o domain_name -o domain_search -o ms_classless_static_routes rwpeer >/tmp/dhcpman/dhcpcd.log 2>&1
echo "dhcpcd exit $?"
ip -n dB route
ip netns exec dA $B/vtictl metrics --run-directory /tmp/dhcpman/run | grep dhcp
wait_until 10 sh -c '[ "$(tcpdump -r /tmp/dhcpman/vtid.pcap 2>/dev/null | wc -l)" -ge 2 ]'
kill $TD; kill $VT; wait
ip netns del dA; ip netns del dB
