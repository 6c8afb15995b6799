# vtid under its own systemd unit (systemd/vtid.service as the repository has it) reads the pppd
# processes it needs to pair L2TP clients with their public peers (issue 21): /var/run/pppN.pid
# and /proc/PID/cmdline. The unit's ProtectProc=invisible mounts vtid's /proc with
# hidepid=invisible, yet vtid, root with only CAP_NET_ADMIN and CAP_CHOWN, still sees root's pppd,
# likely as hidepid lets the group of its gid= option (0 by default) see every process; cmdline needs no
# ptrace access. The ppp links are two pppd joined by a pty (no L2TP: user-mode-linux has no
# l2tp_netlink), so vtid's note for them says it read their command lines and found no tunnel id.
# Run: Scripts/testbed scenario --systemd vtid-unit-pppd (UPDOWN: the build's hook).
TB_HOSTS=""
[ -x "$VTID" ] && [ -x "$UPDOWN" ] && [ "$UPDOWN" != /usr/libexec/ipsec/_updown ] \
  || fail "this scenario starts the build's vtid: set UPDOWN to the build's vti-updown (vtid and vtictl next to it)"
[ -x /usr/sbin/pppd ] || fail "/usr/sbin/pppd is missing: apt-get install ppp"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
modprobe -d /tmp/mods -a ppp_generic ppp_async 2>&1 | sed 's/^/    /'
for module in ppp_generic ppp_async; do [ -d "/sys/module/$module" ] || fail "the kernel module $module did not load"; done
[ -c /dev/ppp ] || mknod /dev/ppp c 108 0
tb_writable_system
install -m 0644 "$repo/systemd/vtid.service" /etc/systemd/system/vtid.service
install -D -m 0755 "$VTID" /usr/sbin/vtid
install -D -m 0755 "$UPDOWN" /usr/libexec/vtictl/vti-updown
mkdir -p /etc/vtictl
rw_server_conf /usr/libexec/vtictl/vti-updown >/etc/ipsec.conf
cp "$repo/Profiles/vtid.yaml.example" /etc/vtictl/vtid.yaml

# Two pppd in the guest's own namespace (where the unit runs), joined by a pty: ppp0 and ppp1.
/usr/sbin/pppd pty "/usr/sbin/pppd notty noauth local nodetach 10.77.0.2:10.77.0.1" noauth local nodetach 10.77.0.1:10.77.0.2 \
  >/tmp/pppd.log 2>&1 &
ppp=$!
trap 'kill $ppp 2>/dev/null' EXIT
wait_for 20 sh -c 'ip -4 -o addr show | grep -q "ppp.*peer 10.77.0.2" && [ -e /var/run/ppp0.pid ] && [ -e /var/run/ppp1.pid ]' >/dev/null \
  || fail "no pair of ppp links from two pppd: $(cat /tmp/pppd.log)"
ok "two pppd joined by a pty: $(ip -4 -o addr show | awk '$2 ~ /^ppp/ { print $2, $4, $5, $6 }' | tr '\n' ';'), pid files $(cat /var/run/ppp0.pid) $(cat /var/run/ppp1.pid)"

# notes: vtictl status --json's peerNote of each ppp link, one a line.
notes() {
  "$VTICTL" status --json | /usr/bin/python3 -c '
import json, sys
for c in json.load(sys.stdin)["vtid"]["l2tpClients"]:
    print(c["device"], c.get("peerNote"))'
}
systemctl daemon-reload
systemctl start vtid.service || fail "systemctl start vtid failed: $(journalctl -u vtid --no-pager -n 20 2>&1)"
grep -q '^ProtectProc=invisible$' /etc/systemd/system/vtid.service || fail "the unit no longer says ProtectProc=invisible"
pid=$(unit_pid vtid.service)
echo "    vtid's /proc: $(awk '$5 == "/proc" { print $NF }' "/proc/$pid/mountinfo" | tr '\n' ' ')"
echo "    vtid's capabilities: $(capability_names "$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")")"
out=$(notes) || fail "vtictl status --json failed"
echo "$out" | sed 's/^/    /'
[ "$(grep -c "pppd has no pppol2tp_tunnel_id" <<<"$out")" = 2 ] || fail "vtid under its unit should read pppd's command line: $out"
ok "vtid under its unit as shipped reads both pppd's command lines (and finds no tunnel id: they are not L2TP)"
systemctl stop vtid.service
