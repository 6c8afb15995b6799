# vti-updown driven directly with recorded pluto environments (no pluto): idempotence, order
# tolerance, adoption of a device the stock script left, refusal of a conflicting device, and
# hostile input that changes nothing.
[ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] || fail "this scenario tests vti-updown: set UPDOWN to its path"
tb_switch
tb_host gw 192.0.2.2/24 10.3.0.1/24

# The same up-client twice: the second changes nothing.
run_hook gw rw-server-01-up-client >/dev/null || fail "gw: up-client for road1 failed"
first=$(kernel_state gw)
output=$(run_hook gw rw-server-01-up-client) || fail "gw: a repeated up-client failed: $output"
[ "$(kernel_state gw)" = "$first" ] || fail "gw: a repeated up-client changed the kernel: $(diff <(echo "$first") <(kernel_state gw))"
ok "gw: the same up-client twice leaves the kernel as the first left it"
expect_vti gw vti02 192.0.2.2 0.0.0.0 12
expect_route gw 10.0.1.10 vti02

# Two clients on the shared device, then one leaves: exactly its route goes.
run_hook gw rw-server-04-up-client >/dev/null || fail "gw: up-client for road2 failed"
expect_route gw 10.0.1.11 vti02
run_hook gw rw-server-07-down-client >/dev/null || fail "gw: down-client for road1 failed"
expect_no_route gw 10.0.1.10 "road1 is down"
expect_route gw 10.0.1.11 vti02
# A down without an up, and an unroute of something never routed, are harmless.
run_hook gw rw-server-07-down-client >/dev/null || fail "gw: a repeated down-client failed"
run_hook gw rw-server-08-unroute-client >/dev/null || fail "gw: unroute-client failed"
expect_route gw 10.0.1.11 vti02
ok "gw: repeated down and unroute are harmless"
# A route of another protocol to the same prefix is not ours to delete.
ip -n gw route add 10.0.1.10/32 dev vti02 proto static
run_hook gw rw-server-07-down-client >/dev/null || fail "gw: down-client failed"
grep -q "proto static" <<<"$(ip -n gw route show 10.0.1.10)" || fail "gw: the hook deleted a route it did not install"
ok "gw: a foreign route to the same prefix survives our down-client"

# A device left by the stock script with the same parameters is adopted.
ip -n gw link add vti01 type vti local 192.0.2.2 remote 192.0.2.1 key 5
run_hook gw s2s-east-01-up-client >/dev/null || fail "gw: could not adopt the existing vti01"
expect_vti gw vti01 192.0.2.2 192.0.2.1 5
# One with other parameters is refused, clearly, and left alone.
ip -n gw link del vti01
ip -n gw link add vti01 type vti local 192.0.2.2 remote 192.0.2.99 key 7
if output=$(run_hook gw s2s-east-01-up-client); then fail "gw: the hook accepted a vti01 with other parameters"; fi
grep -q "vti01 exists with other parameters" <<<"$output" || fail "gw: unclear refusal: $output"
grep -q "remote 192.0.2.99" <<<"$(ip -n gw -d link show vti01)" || fail "gw: the conflicting vti01 was modified"
ok "gw: a vti01 with other parameters is refused and untouched ($output)"
ip -n gw link del vti01

# Hostile input: rejected with one line, nothing created.
before=$(kernel_state gw)
for bad in 'VTI_IFACE=vti$(reboot)' 'VTI_IFACE=../../etc' 'CONNMARK_IN=12/0xfffffffff' 'PLUTO_PEER_CLIENT=10.0.1.300/32'; do
  if output=$(run_hook gw rw-server-01-up-client "$bad"); then fail "gw: accepted $bad"; fi
  [ "$(echo "$output" | wc -l)" = 1 ] || fail "gw: more than one line for $bad: $output"
  ok "gw: rejected $bad: $output"
done
[ "$(kernel_state gw)" = "$before" ] || fail "gw: rejected input changed the kernel"
ok "gw: rejected input changed nothing"
output=$(run_hook gw rw-server-01-up-client 'PLUTO_PEER_ID=$(touch /tmp/pwned);`reboot`') || fail "gw: a hostile peer ID broke the hook: $output"
[ ! -e /tmp/pwned ] || fail "gw: a peer ID was executed"
ok "gw: a hostile peer ID is data"

# The conn is deleted: no device goes (the hook never deletes one, shared or not).
run_hook gw s2s-east-01-up-client >/dev/null || fail "gw: s2s up-client failed"
run_hook gw s2s-east-05-unroute-client >/dev/null || fail "gw: s2s unroute-client failed"
expect_vti gw vti01 192.0.2.2 192.0.2.1 5
ip -n gw link del vti01
run_hook gw rw-server-10-unroute-client >/dev/null || fail "gw: rw unroute-client failed"
expect_vti gw vti02 192.0.2.2 0.0.0.0 12
