import XCTest
@testable import VTIModel

/// One deliberately broken configuration per mistake `vtictl check` knows, with its message and line.
final class ConfigCheckTests: XCTestCase {
    private func findings(_ text: String, managed: Set<String>? = nil, proxyARP: Set<String> = []) throws -> [String] {
        let config = try IPsecConfig(main: .init(file: "ipsec.conf", text: text))
        return checkRouteBasedConns(try RouteBasedConn.all(in: config), managed: managed, proxyARP: proxyARP).map(\.description)
    }

    private let updown = "    leftupdown=/usr/libexec/vtictl/vti-updown\n"

    func testACleanConfigurationHasNoFindings() throws {
        XCTAssertEqual(try findings("""
            conn a
                leftsubnet=10.1.0.0/24
                rightsubnet=10.2.0.0/24
                mark=5/0xffffffff
                vti-interface=vti01
                vti-routing=yes
            \(updown)
            conn rw
                leftsubnet=10.3.0.0/24
                rightaddresspool=10.0.1.10-10.0.1.50
                mark=12/0xffffffff
                vti-interface=vti02
                vti-shared=yes
            \(updown)
            """), [])
    }

    func testOneMarkForTwoDevices() throws {
        XCTAssertEqual(try findings("conn a\n    mark=5\n    vti-interface=vti01\n\(updown)conn b\n    mark=5\n    vti-interface=vti02\n\(updown)"), [
            "ipsec.conf:5: error: conn b uses mark 5 like conn a (ipsec.conf:1) but another device (vti02, not vti01): each VTI device needs its own mark",
        ])
    }

    func testOneDeviceWithTwoMarksOrUnshared() throws {
        XCTAssertEqual(try findings("conn a\n    mark=5\n    vti-interface=vti01\n\(updown)conn b\n    mark=6\n    vti-interface=vti01\n\(updown)"), [
            "ipsec.conf:5: error: conn b puts vti01 on mark 6, conn a (ipsec.conf:1) on mark 5: one device has one key",
        ])
        XCTAssertEqual(try findings("conn a\n    mark=5\n    vti-interface=vti01\n\(updown)conn b\n    mark=5\n    vti-interface=vti01\n\(updown)"), [
            "ipsec.conf:5: error: conns a (ipsec.conf:1) and b share vti01 without vti-shared=yes on both",
        ])
    }

    func testOverlappingPools() throws {
        XCTAssertEqual(try findings("""
            conn a
                mark=5
                vti-interface=vti01
                rightaddresspool=10.0.1.10-10.0.1.50
            \(updown)conn b
                mark=6
                vti-interface=vti02
                rightaddresspool=10.0.1.40-10.0.1.90
            \(updown)
            """), ["ipsec.conf:6: error: address pool 10.0.1.40-10.0.1.90 overlaps conn a's 10.0.1.10-10.0.1.50 (ipsec.conf:1)"])
    }

    func testPoolInsideTheLocalSubnet() throws {
        let conn = "conn a\n    mark=5\n    vti-interface=vti01\n    leftsubnet=10.0.0.0/16\n    rightaddresspool=10.0.1.10-10.0.1.50\n\(updown)"
        XCTAssertEqual(try findings(conn), [
            "ipsec.conf:1: error: address pool 10.0.1.10-10.0.1.50 lies in the local subnet 10.0.0.0/16: hosts on that LAN would ARP for the clients and get no answer (set conns.a.proxy_arp: LAN-INTERFACE in vtid.yaml, or use a range outside the LAN)",
        ])
        XCTAssertEqual(try findings(conn, proxyARP: ["a"]), [], "vtid answers ARP for the clients on the LAN: what the error advises")
        XCTAssertEqual(try findings(conn, proxyARP: ["b"]).count, 1, "proxy ARP for another conn does not help this one")
    }

    func testRoutingALocalNetworkIntoTheTunnel() throws {
        XCTAssertEqual(try findings("conn a\n    mark=5\n    vti-interface=vti01\n    vti-routing=yes\n    leftsubnet=10.1.0.0/24\n    rightsubnet=10.0.0.0/8\n\(updown)"), [
            "ipsec.conf:1: error: conn a: vti-routing=yes would route the local network 10.1.0.0/24 into vti01 (rightsubnet=10.0.0.0/8)",
        ])
        XCTAssertEqual(try findings("conn a\n    mark=5\n    vti-interface=vti01\n    vti-routing=yes\n    rightsubnet=0.0.0.0/0\n\(updown)"), [
            "ipsec.conf:1: warning: conn a: vti-routing=yes with rightsubnet=0.0.0.0/0 installs no route (route_default = no)",
        ])
    }

    /// vtid hears of a conn's tunnels only through vti-updown: for a conn it manages, libreswan's
    /// stock script (or none named, which is the same) means no routes and no leases: an error.
    func testStockOrAbsentUpdownIsAnErrorForConnsVTIDManages() throws {
        let stock = "conn a\n    left=192.0.2.1\n    right=%any\n    mark=5\n    vti-interface=vti01\n    leftupdown=/usr/libexec/ipsec/_updown\n"
        XCTAssertEqual(try findings(stock), [
            "ipsec.conf:6: error: conn a is managed by vtid but runs leftupdown=/usr/libexec/ipsec/_updown, libreswan's stock updown script: vtid gets no events from it, so it installs no routes and records no leases; set leftupdown=/usr/libexec/vtictl/vti-updown",
        ])
        XCTAssertEqual(try findings(stock, managed: ["a"]), try findings(stock), "manage: [a] as manage: all")
        let absent = "conn a\n    left=192.0.2.1\n    right=%any\n    mark=5\n    vti-interface=vti01\n"
        XCTAssertEqual(try findings(absent), [
            "ipsec.conf:1: error: conn a is managed by vtid but has no leftupdown=, so pluto runs libreswan's stock updown script: vtid gets no events from it, so it installs no routes and records no leases; set leftupdown=/usr/libexec/vtictl/vti-updown",
        ])
        XCTAssertEqual(try findings(absent.replacingOccurrences(of: "vti01\n", with: "vti01\n    leftupdown=\"ipsec _updown --route yes\"\n")).first?
            .hasPrefix("ipsec.conf:6: error: conn a is managed by vtid but runs leftupdown=ipsec _updown --route yes, libreswan's stock updown script"), true)
        XCTAssertEqual(try findings(absent.replacingOccurrences(of: "vti01\n", with: "vti01\n    leftupdown=%disabled\n")).first?
            .hasPrefix("ipsec.conf:6: error: conn a is managed by vtid but has leftupdown=%disabled, so pluto runs no updown program"), true)
    }

    func testStockUpdownStaysAWarningForConnsVTIDDoesNotManage() throws {
        let stock = "conn a\n    left=192.0.2.1\n    right=%any\n    mark=5\n    vti-interface=vti01\n    leftupdown=/usr/libexec/ipsec/_updown\n"
        XCTAssertEqual(try findings(stock, managed: ["b"]), [
            "ipsec.conf:6: warning: conn a runs leftupdown=/usr/libexec/ipsec/_updown, libreswan's stock updown script: devices, routes and MTU are left to it (vtid does not manage it)",
        ])
        XCTAssertEqual(try findings("conn a\n    mark=5\n    vti-interface=vti01\n", managed: []), [
            "ipsec.conf:1: warning: conn a has no leftupdown=, so pluto runs libreswan's stock updown script: devices, routes and MTU are left to it (vtid does not manage it)",
        ])
        // A program of the operator's own may wrap vti-updown: a managed conn gets a warning, not an error.
        XCTAssertEqual(try findings(stock.replacingOccurrences(of: "/usr/libexec/ipsec/_updown", with: "/etc/ipsec.d/my-updown")), [
            "ipsec.conf:6: warning: conn a is managed by vtid but runs leftupdown=/etc/ipsec.d/my-updown, not vti-updown: unless that program runs vti-updown with pluto's environment, vtid gets no events from it",
        ])
    }

    /// pluto runs the updown of the side that is this host: a road-warrior server is left (right=%any);
    /// a gateway-to-gateway file may be either side, so the other side's is a warning until it is set too.
    func testTheUpdownThatCountsIsThisHostsSide() throws {
        let hook = "/usr/libexec/vtictl/vti-updown"
        XCTAssertEqual(try findings("conn rw\n    left=192.0.2.1\n    right=%any\n    mark=5\n    vti-interface=vti01\n    leftupdown=\(hook)\n"), [])
        let site = "conn s\n    left=192.0.2.1\n    right=198.51.100.7\n    mark=5\n    vti-interface=vti01\n    leftupdown=\(hook)\n"
        XCTAssertEqual(try findings(site), [
            "ipsec.conf:1: warning: conn s has no rightupdown=, so pluto runs libreswan's stock updown script where this host is right=198.51.100.7; set rightupdown=/usr/libexec/vtictl/vti-updown",
        ])
        XCTAssertEqual(try findings(site + "    rightupdown=\(hook)\n"), [])
        XCTAssertEqual(try findings(site.replacingOccurrences(of: "192.0.2.1", with: "%defaultroute")), [], "%defaultroute: this host is left")
        XCTAssertEqual(try findings(site.replacingOccurrences(of: "leftupdown", with: "rightupdown").replacingOccurrences(of: "192.0.2.1", with: "%any")), [],
                       "left=%any: this host is right")
    }

    func testOneDeviceTowardsTwoPeersOrFromTwoAddresses() throws {
        let updowns = updown + updown.replacingOccurrences(of: "leftupdown", with: "rightupdown")
        XCTAssertEqual(try findings("conn a\n    left=192.0.2.1\n    right=198.51.100.1\n    mark=5\n    vti-interface=vti01\n\(updowns)conn b\n    left=192.0.2.1\n    right=203.0.113.7\n    mark=5\n    vti-interface=vti01\n\(updowns)"), [
            "ipsec.conf:8: error: conn b puts vti01 towards peer 203.0.113.7, conn a (ipsec.conf:1) towards 198.51.100.1: an unshared VTI device has one peer (use one device per peer)",
        ])
        XCTAssertEqual(try findings("conn a\n    left=192.0.2.1\n    mark=5\n    vti-interface=vti01\n    vti-shared=yes\n\(updown)conn b\n    left=192.0.2.9\n    mark=5\n    vti-interface=vti01\n    vti-shared=yes\n\(updown)"), [
            "ipsec.conf:7: error: conn b puts vti01 on local address 192.0.2.9, conn a (ipsec.conf:1) on 192.0.2.1: a VTI device has one local address",
        ])
    }

    /// Missing marks and invalid device names are reported for every conn at once, with lines.
    func testEveryUnreadableConnIsReported() throws {
        let config = try IPsecConfig(main: .init(file: "ipsec.conf", text: """
            conn nomark
                vti-interface=vti01
            conn badname
                mark=6
                vti-interface=vti/2
            conn toolong
                mark=7
                vti-interface=averyveryverylongname
            conn good
                mark=8
                vti-interface=vti08
            """))
        let (conns, errors) = RouteBasedConn.each(in: config)
        XCTAssertEqual(conns.map(\.name), ["good"])
        XCTAssertEqual(errors.map(\.description), [
            "ipsec.conf:1: conn nomark has vti-interface= but no mark= (the VTI's keys)",
            "ipsec.conf:5: vti-interface=\"vti/2\" is not a valid interface name (1-15 letters, digits, '.', '-' or '_')",
            "ipsec.conf:8: vti-interface=\"averyveryverylongname\" is not a valid interface name (1-15 letters, digits, '.', '-' or '_')",
        ])
    }

    // MARK: XFRM interfaces

    /// ipsec-interface=0 is if_id 16384: with ipsec-interface=16384 two devices want one if_id.
    func testTwoXfrmInterfacesWithOneIfID() throws {
        XCTAssertEqual(try findings("conn a\n    ipsec-interface=0\n\(updown)conn b\n    ipsec-interface=16384\n\(updown)"), [
            "ipsec.conf:4: error: conn b's ipsec16384 has if_id 16384 like conn a's ipsec0 (ipsec.conf:1): ipsec-interface=0 is if_id 16384, so the two cannot both exist; use one number for both conns or another for one",
        ])
        XCTAssertEqual(try findings("conn a\n    ipsec-interface=1\n\(updown)conn b\n    ipsec-interface=yes\n\(updown)"), [],
                       "two conns on one XFRM interface (yes is 1): libreswan shares it")
    }

    /// vti-interface=ipsec1 in one conn, ipsec-interface=1 in another: one name, two devices.
    func testOneNameForAVTIAndAnXfrmInterface() throws {
        XCTAssertEqual(try findings("conn a\n    mark=5\n    vti-interface=ipsec1\n\(updown)conn b\n    ipsec-interface=1\n\(updown)"), [
            "ipsec.conf:5: error: ipsec1 is conn a's VTI (vti-interface=, ipsec.conf:1) and conn b's XFRM interface (ipsec-interface=, ipsec.conf:5): one name, one device; rename the VTI or renumber the XFRM interface",
        ])
        XCTAssertEqual(try findings("conn a\n    mark=5\n    vti-interface=ipsec2\n\(updown)conn b\n    ipsec-interface=1\n\(updown)"), [])
    }
}
