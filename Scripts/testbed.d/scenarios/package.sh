# The Debian package on a gateway: dpkg -i (vtid enabled and started by postinst under systemd,
# the packaged hook as pluto's leftupdown=), a site-to-site tunnel through it, an upgrade (vtid
# restarted; the tunnel, its device, routes and SAs untouched), dpkg -r (vtid stopped; device,
# routes and tunnel stay) and dpkg --purge (/etc/vtictl, /var/lib/vtid and /run/vtid gone; still
# nothing else touched). By hand (README "Debian package"):
#   VTICTL_DEB=$(Scripts/package | tail -n 1) Scripts/testbed scenario --systemd package
# west's vtid is the package's unit in west's network namespace (a drop-in adds only
# NetworkNamespacePath=); east's hook works alone (its hook.conf says vtid = no).
TB_HOSTS=""
[ -n "${VTICTL_DEB:-}" ] && [ -f "$VTICTL_DEB" ] || fail "set VTICTL_DEB to the package to test (Scripts/package prints it)"
tb_writable_system
# man-db's trigger would rebuild its index for minutes under UML. And the guest's root is this
# machine's, a container whose /usr/sbin/policy-rc.d forbids starting services (exit 101), which
# the postinst obeys (deb-systemd-invoke); a gateway has none.
rm -f /var/lib/man-db/auto-update /usr/sbin/policy-rc.d
hook=/usr/libexec/vtictl/vti-updown
s2s_hosts

# west: /etc/ipsec.conf is both pluto's and vtid's (vtid.yaml's default ipsec_conf).
s2s_conf "$hook" 10.1.0.0/24 10.2.0.0/24 yes >/etc/ipsec.conf
mkdir -p /etc/systemd/system/vtid.service.d
printf '[Service]\nNetworkNamespacePath=/run/netns/west\n' >/etc/systemd/system/vtid.service.d/testbed.conf

output=$(dpkg -i "$VTICTL_DEB" 2>&1) || fail "dpkg -i failed: $output"
ok "dpkg -i $(basename "$VTICTL_DEB")"
for file in /usr/bin/vtictl /usr/sbin/vtid "$hook" /lib/systemd/system/vtid.service /etc/vtictl/vtid.yaml \
  /usr/share/man/man1/vtictl.1.gz /usr/share/man/man8/vtid.8.gz /usr/share/man/man8/vti-updown.8.gz \
  /usr/share/bash-completion/completions/vtictl /usr/share/zsh/vendor-completions/_vtictl; do
  [ -e "$file" ] || fail "the package did not install $file"
done
ok "programs, unit, vtid.yaml, man pages and completions installed"
[ "$(systemctl is-enabled vtid.service)" = enabled ] || fail "postinst did not enable vtid.service: $(systemctl is-enabled vtid.service 2>&1)"
expect_unit_active vtid.service "started by postinst"
pid=$(unit_pid vtid.service)
[ "$(readlink "/proc/$pid/ns/net")" = "$(ip netns exec west readlink /proc/self/ns/net)" ] || fail "vtid does not run in west's namespace"
expect_sandbox "$pid" /lib/systemd/system/vtid.service

tb_pluto west "$(cat /etc/ipsec.conf)" '@west @east : PSK "package-test"'
printf 'vtid = no\n' >"$TB_RUN/east/hook.conf"
tb_pluto east "$(s2s_conf "\"$hook --config $TB_RUN/east/hook.conf\"" 10.1.0.0/24 10.2.0.0/24 yes)" '@west @east : PSK "package-test"'
tb_add west s2s
tb_add east s2s
s2s_up
expect_ping west 10.1.0.1 10.2.0.1 "west LAN to east LAN through the packaged hook and vtid"
expect_route_protocol west 10.2.0.0/24 157
events=$(ip netns exec west vtictl events --json | tr -d ' \n') || fail "vtictl events failed on west"
grep -q '"source":"vtid"' <<<"$events" || fail "west's vtid applied no event: $events"
ok "west: the packaged vtid applied pluto's events"
check=$(ip netns exec west vtictl check 2>&1) || fail "west: vtictl check finds errors in the packaged setup: $check"
grep -q "^1 route-based conn checked: 0 errors" <<<"$check" || fail "west: vtictl check says: $check"
ok "west: vtictl check: $(tail -n 1 <<<"$check") (leftupdown=$hook is the installed hook)"

# The kernel state a package operation must leave alone: west's links, addresses, routes and VTI
# sysctls, and both hosts' SAs (pluto untouched: same SPIs).
sas() { ip -n west xfrm state | grep -o 'spi 0x[0-9a-f]*' | sort; ip -n east xfrm state | grep -o 'spi 0x[0-9a-f]*' | sort; }
before=$(kernel_state west; sas)
untouched() {
  local now
  now=$(kernel_state west; sas)
  [ "$now" = "$before" ] || fail "$1 changed the kernel: $(diff <(echo "$before") <(echo "$now"))"
  expect_ping west 10.1.0.1 10.2.0.1 "the tunnel after $1"
  ok "$1 left west's devices, routes and sysctls and both hosts' SAs as they were"
}

# Upgrade: the same package again runs the upgrade path (prerm upgrade, postinst configure VERSION).
output=$(dpkg -i "$VTICTL_DEB" 2>&1) || fail "dpkg -i (upgrade) failed: $output"
expect_unit_active vtid.service "after the upgrade"
[ "$(unit_pid vtid.service)" != "$pid" ] || fail "the upgrade did not restart vtid (pid $pid)"
ok "the upgrade restarted vtid (pid $pid -> $(unit_pid vtid.service))"
untouched "the upgrade"

output=$(dpkg -r vtictl 2>&1) || fail "dpkg -r failed: $output"
[ "$(systemctl is-active vtid.service)" != active ] || fail "vtid still runs after dpkg -r"
ok "dpkg -r stopped vtid"
[ ! -e "$hook" ] && [ -e /etc/vtictl/vtid.yaml ] && [ -d /var/lib/vtid ] \
  || fail "after dpkg -r: the hook must be gone, vtid.yaml (a conffile) and /var/lib/vtid kept"
ok "dpkg -r removed the programs, kept vtid.yaml and /var/lib/vtid"
untouched "dpkg -r"

output=$(dpkg --purge vtictl 2>&1) || fail "dpkg --purge failed: $output"
for gone in /etc/vtictl /var/lib/vtid /run/vtid; do [ ! -e "$gone" ] || fail "$gone is still there after dpkg --purge"; done
ok "dpkg --purge removed /etc/vtictl, /var/lib/vtid and /run/vtid"
untouched "dpkg --purge"
