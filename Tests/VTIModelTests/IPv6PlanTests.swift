import XCTest
@testable import VTIModel

/// The plans for pluto 4.10's IPv6 calls, recorded in the test bed (issue 19): `hook-ipv6-site-to-site`
/// (a vti6 device between two IPv6 gateways) and `hook-ipv6-road-warriors` (an IPv6 pool on a
/// shared vti6 device), as fixtures `ipv6-s2s-*` and `ipv6-rw-*`. pluto 4.10 names the verbs with
/// `-v6` for IPv6 conns; the stock script does no VTI work for them.
final class IPv6PlanTests: XCTestCase {
    private func plan(_ fixture: String, _ version: Libreswan = .v4_10) throws -> [String] {
        planHook(event: try event(fixture, version), settings: HookSettings()).map(\.description)
    }

    private static let mtu = "(derived (fallback AES-CBC+HMAC-SHA2-512-256))"

    private static func ipv6Setup(_ device: String, local: String, remote: String, key: Int) -> [String] {
        [
            "ensure VTI \(device) local \(local) remote \(remote) ikey \(key) okey \(key)",
            "set net.ipv6.conf.\(device).disable_policy=1",
            "set net.ipv6.conf.\(device).forwarding=1",
            "set net.ipv6.conf.\(device).accept_redirects=0",
            "set net.ipv6.conf.\(device).accept_ra=0",
            "set net.ipv6.conf.\(device).disable_ipv6=0",
            "set net.ipv6.conf.all.forwarding=1",
            "ensure MTU of \(device) \(mtu)",
        ]
    }

    func testSiteToSiteOverVTI6() throws {
        let setup = Self.ipv6Setup("vti01", local: "2001:db8::1", remote: "2001:db8::2", key: 5)
        XCTAssertEqual(try plan("ipv6-s2s-west-01-up-client-v6"), setup + ["add route fd02::/64 dev vti01 proto 157"])
        XCTAssertEqual(try plan("ipv6-s2s-west-02-prepare-client-v6"), setup)
        XCTAssertEqual(try plan("ipv6-s2s-west-03-route-client-v6"), setup + ["add route fd02::/64 dev vti01 proto 157"])
        XCTAssertEqual(try plan("ipv6-s2s-west-05-unroute-client-v6"), ["delete route fd02::/64 dev vti01 proto 157"])
        XCTAssertEqual(try plan("ipv6-s2s-east-01-up-client-v6").last, "add route fd01::/64 dev vti01 proto 157")
    }

    /// Each client's /128 from the IPv6 pool goes into the shared device, and only its own goes
    /// at its down; the clients themselves (no VTI) route ::/0 as 2000::/3 with their pool address.
    func testRoadWarriorsWithAnIPv6Pool() throws {
        let setup = Self.ipv6Setup("vti02", local: "2001:db8::2", remote: "::", key: 12)
        XCTAssertEqual(try plan("ipv6-rw-gw-01-up-client-v6"), setup + ["add route 2001:db8:1::/128 dev vti02 proto 157"])
        XCTAssertEqual(try plan("ipv6-rw-gw-04-up-client-v6"), setup + ["add route 2001:db8:1::1/128 dev vti02 proto 157"])
        XCTAssertEqual(try plan("ipv6-rw-gw-07-down-client-v6"), ["delete route 2001:db8:1::/128 dev vti02 proto 157"])
        XCTAssertEqual(try plan("ipv6-rw-road1-03-route-client-v6"), [
            "ensure address 2001:db8:1::/128 on lo",
            "add route 2000::/3 dev eth0 src 2001:db8:1:: proto 157",
        ])
    }

    /// libreswan 5.2 (Debian 13, recorded under qemu) sends the same IPv6 calls in 5.x's order
    /// (prepare, route, up) and the plans are the same.
    func testLibreswan52SendsTheSameIPv6Calls() throws {
        let setup = Self.ipv6Setup("vti01", local: "2001:db8::1", remote: "2001:db8::2", key: 5)
        XCTAssertEqual(try plan("ipv6-s2s-west-01-prepare-client-v6", .v5_2), setup)
        XCTAssertEqual(try plan("ipv6-s2s-west-02-route-client-v6", .v5_2), setup + ["add route fd02::/64 dev vti01 proto 157"])
        XCTAssertEqual(try plan("ipv6-s2s-west-05-unroute-client-v6", .v5_2), ["delete route fd02::/64 dev vti01 proto 157"])
        let shared = Self.ipv6Setup("vti02", local: "2001:db8::2", remote: "::", key: 12)
        XCTAssertEqual(try plan("ipv6-rw-gw-03-up-client-v6", .v5_2), shared + ["add route 2001:db8:1::/128 dev vti02 proto 157"])
        XCTAssertEqual(try plan("ipv6-rw-gw-07-down-client-v6", .v5_2), ["delete route 2001:db8:1::/128 dev vti02 proto 157"])
    }

    /// A dual-stack Child SA (5.2, `leftsubnet=10.1.0.0/24,fd01::/64`): pluto calls the hook once per
    /// family, `-v6` for the IPv6 selectors (so 5.2's suffix follows the selectors, where 4.10's
    /// followed the end points for IPv4 inside IPv6), and both families' routes go into one vti.
    func testDualStackRoutesBothFamiliesIntoOneDevice() throws {
        let ipv4 = try plan("dual-stack-west-03-up-client", .v5_2)
        let ipv6 = try plan("dual-stack-west-06-up-client-v6", .v5_2)
        XCTAssertEqual(ipv4.first, "ensure VTI vti01 local 192.0.2.1 remote 192.0.2.2 ikey 5 okey 5")
        XCTAssertEqual(ipv6.first, ipv4.first, "one device for both families")
        XCTAssertEqual(ipv4.last, "add route 10.2.0.0/24 dev vti01 proto 157")
        XCTAssertEqual(ipv6.last, "add route fd02::/64 dev vti01 proto 157")
        XCTAssertTrue(ipv6.contains("set net.ipv6.conf.vti01.disable_ipv6=0"), "\(ipv6)")
        XCTAssertTrue(ipv4.contains("set net.ipv4.conf.vti01.rp_filter=2"), "\(ipv4)")
    }

    /// Every recorded IPv6 call (4.10 and 5.2) parses and plans, and each plan converges (the
    /// writes it makes on an empty kernel leave nothing to write).
    func testEveryRecordedIPv6CallPlansAndConverges() throws {
        let names = allFixtureNames().filter { $0.hasPrefix("ipv6-") }.map { ($0, Libreswan.v4_10) }
            + allFixtureNames(.v5_2).filter { $0.hasPrefix("ipv6-") }.map { ($0, Libreswan.v5_2) }
        XCTAssertEqual(names.count, 52, "the IPv6 recordings are missing")
        for (name, version) in names {
            let event = try event(name, version)
            XCTAssertEqual(event.family, .ipv6, name)
            let plan = planHook(event: event, settings: HookSettings())
            var kernel = KernelSnapshot()
            kernel.routesComplete = true
            kernel.apply(converge(plan, kernel))
            XCTAssertEqual(converge(plan, kernel).filter { if case .notice = $0 { false } else { true } }, [], name)
        }
    }
}
