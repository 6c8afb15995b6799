# vtid started by systemd from systemd/vtid.service exactly as the repository has it (its sandbox:
# capability bounding set, no_new_privs, seccomp, ProtectSystem=strict, MemoryDenyWriteExecute,
# RestrictAddressFamilies, ...), with the built vtid at the unit's /usr/sbin/vtid. It must start
# (Type=notify), answer vtictl, apply a hook event (VTI device, sysctls, route, lease), hand its
# socket to socket_group (chown), reload, and stop leaving the device and route. The guest's own
# namespace is the gateway. Run: Scripts/testbed scenario --systemd vtid-unit (UPDOWN: the build's hook).
TB_HOSTS=""
[ -x "$VTID" ] && [ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] \
  || fail "this scenario starts the build's vtid: set UPDOWN to the build's vti-updown (vtid and vtictl next to it)"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
tb_writable_system
unit=/etc/systemd/system/vtid.service
install -m 0644 "$repo/systemd/vtid.service" "$unit"
install -D -m 0755 "$VTID" /usr/sbin/vtid
install -D -m 0755 "$UPDOWN" /usr/libexec/vtictl/vti-updown
hook=/usr/libexec/vtictl/vti-updown

# The gateway of the road-warrior fixtures (192.0.2.2, pool 10.0.1.10-50 on vti02), in the guest's
# own namespace, which systemd's units share.
ip link add eth0 type dummy
ip addr add 192.0.2.2/24 dev eth0
ip link set eth0 up
rw_server_conf "$hook" >/etc/ipsec.conf
mkdir -p /etc/vtictl
# socket_group: the chown that needs CAP_CHOWN. sa_grace_s: the recorded event's SAs are not in
# the kernel (no pluto here), and vtid would rightly remove the route 10 s after it.
# metrics_listen: an IP socket and loopback traffic under RestrictAddressFamilies. dhcp_inform:
# UDP port 67 bound on vti02 (CAP_NET_BIND_SERVICE, SO_BINDTODEVICE) once the event made it.
{ cat "$repo/Profiles/vtid.yaml.example"; printf 'socket_group: 4242\nsa_grace_s: 3600\nmetrics_listen: "127.0.0.1:9719"\nconns:\n  rw:\n    dhcp_inform: yes\n'; } >/etc/vtictl/vtid.yaml

ip link set lo up
systemctl daemon-reload
started=$EPOCHREALTIME
systemctl start vtid.service || fail "systemctl start vtid failed: $(journalctl -u vtid --no-pager -n 20 2>&1)"
expect_unit_active vtid.service "started by systemd in $(awk -v s="$started" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s, ready (Type=notify)"
pid=$(unit_pid vtid.service)
cmp -s "$repo/systemd/vtid.service" "$(systemctl show -p FragmentPath --value vtid.service)" \
  || fail "systemd did not load the repository's unit file"
expect_sandbox "$pid" "$unit"
[ "$(stat -c %g /run/vtid/control.sock)" = 4242 ] || fail "the control socket's group is $(stat -c %g /run/vtid/control.sock), not socket_group 4242 (chown without CAP_CHOWN?)"
ok "vtid handed its socket to socket_group 4242 (CAP_CHOWN)"
status=$("$VTICTL" status 2>&1) || fail "vtictl status failed: $status"
grep -q "^vtid: running (pid $pid" <<<"$status" || fail "vtictl status does not show the unit's vtid: $status"
ok "vtictl status answers: $(head -n 1 <<<"$status")"
scrape() { exec 3<>/dev/tcp/127.0.0.1/9719 && printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 && timeout 5 cat <&3; exec 3<&-; }
waited=$(wait_for 5 bash -c "$(declare -f scrape); scrape | grep -q '^vtid_degraded 0'") \
  || fail "no metrics over HTTP under the unit's sandbox: $(scrape 2>&1 | head -n 5); $(journalctl -u vtid --no-pager -n 5 2>&1)"
ok "vtid serves GET /metrics on 127.0.0.1:9719 under its sandbox (AF_INET), after $waited s"

# A hook event, as pluto would run the hook (the recorded up-client of road1); vtid applies it.
mapfile -t variables <"$TB_FIXTURES/rw-server-01-up-client.env"
output=$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${variables[@]}" "$hook" 2>&1) || fail "the hook's up-client failed: $output"
events=$("$VTICTL" events --json | tr -d ' \n') || fail "vtictl events failed: $events"
grep -q '"source":"vtid"' <<<"$events" && grep -q '"result":"applied"' <<<"$events" \
  || fail "vtid did not apply the event itself (hook: $output; events: $events)"
ok "vtid applied the hook's up-client under its sandbox ($output)"
shown=$(ip -d link show vti02) || fail "no vti02 after the event"
grep -q "vti remote any local 192.0.2.2 ikey 0.0.0.12 okey 0.0.0.12" <<<"$shown" || fail "vti02 has other parameters: $shown"
grep -q "proto 157" <<<"$(ip route show 10.0.1.10)" || fail "no route 10.0.1.10 proto 157: $(ip route)"
# Values a new device does not start with (default/accept_redirects is 1, default/rp_filter 0 here):
# vtid wrote them through /proc/sys under ProtectSystem=strict.
for setting in disable_policy=1 rp_filter=2 accept_redirects=0 forwarding=1; do
  value=$(cat "/proc/sys/net/ipv4/conf/vti02/${setting%=*}")
  [ "$value" = "${setting#*=}" ] || fail "vti02's ${setting%=*} is $value, not ${setting#*=} (vtid writes /proc/sys)"
done
[ "$(cat /proc/sys/net/ipv4/conf/default/accept_redirects)" = 1 ] || note "default/accept_redirects is not 1: the accept_redirects check proves less"
ok "vti02 (keys 12), route 10.0.1.10 proto 157 and vti02's sysctls in place"
leases=$("$VTICTL" leases) && grep -q "10.0.1.10.*connected" <<<"$leases" || fail "no lease recorded in /var/lib/vtid: $leases"
ok "the lease is recorded in the state directory"
# (/proc/net/udp, not ss: the UML kernel has no udp_diag.) Port 67 is 0043 there.
waited=$(wait_for 10 sh -c "awk '\$2 ~ /:0043\$/ { found = 1 } END { exit !found }' /proc/net/udp && journalctl -u vtid --no-pager | grep -q 'answering DHCPINFORM on vti02'") \
  || fail "vtid has no DHCP socket on vti02 under its sandbox: $("$VTICTL" status 2>&1 | grep -i dhcp); $(journalctl -u vtid --no-pager 2>&1 | grep -i dhcp | tail -n 3)"
grep -qi 'cannot answer DHCPINFORM' <<<"$("$VTICTL" status 2>&1)" && fail "vtictl status shows a DHCP problem: $("$VTICTL" status 2>&1 | grep -i dhcp)"
ok "vtid answers DHCPINFORM on vti02 under its sandbox: UDP port 67 bound to the device after $waited s"

systemctl reload vtid.service || fail "systemctl reload vtid failed"
expect_unit_active vtid.service "after a reload (SIGHUP)"
[ "$(unit_pid vtid.service)" = "$pid" ] || fail "a reload restarted vtid"
"$VTICTL" status >/dev/null 2>&1 || fail "vtictl status failed after the reload"
ok "vtid answers after the reload, same process"

state=$(kernel_state_here)
systemctl stop vtid.service
[ "$(systemctl is-active vtid.service)" != active ] || fail "vtid still active after stop"
[ "$(kernel_state_here)" = "$state" ] || fail "stopping vtid changed the kernel: $(diff <(echo "$state") <(kernel_state_here))"
ok "systemctl stop vtid leaves vti02 and its route"
