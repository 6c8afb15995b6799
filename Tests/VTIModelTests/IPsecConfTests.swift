import XCTest
@testable import VTIModel

final class IPsecConfTests: XCTestCase {
    private let main = """
        # /etc/ipsec.conf
        config setup
            logfile=/var/log/pluto.log

        conn %default
            authby=secret
            leftupdown=/usr/libexec/vtictl/vti-updown

        conn vti-common
            ikev2=insist
            vti-routing=yes

        include /etc/ipsec.d/*.conf
        """
    private let roadWarriors = """
        conn rw
            also=vti-common
            left=192.0.2.2
            leftsubnet=10.3.0.0/24, 10.4.0.0/24   # two LANs
            right=%any
            rightaddresspool=10.0.1.10-10.0.1.50
            mark=12/0xffffffff
            vti-interface=vti02
            vti-shared=yes
            leftvti=10.0.1.1/24
        """
    private let site = """
        conn branch
            left=192.0.2.1
            right=198.51.100.7
            rightsubnet=10.2.0.0/24
            mark-in=5/0xffffffff
            mark-out=6/0xffffffff
            vti-interface="vti01"
            leftupdown=/usr/libexec/ipsec/_updown

        conn policy-only
            left=192.0.2.1
            right=203.0.113.9
        """

    private func parse(_ text: String) throws -> IPsecConfig {
        try IPsecConfig(main: .init(file: "/etc/ipsec.conf", text: text)) { pattern, _ in
            XCTAssertEqual(pattern, "/etc/ipsec.d/*.conf")
            return [.init(file: "/etc/ipsec.d/branch.conf", text: self.site), .init(file: "/etc/ipsec.d/rw.conf", text: self.roadWarriors)]
        }
    }

    func testRouteBasedConnsFromIncludesDefaultAndAlso() throws {
        let config = try parse(main)
        XCTAssertEqual(config.setup?.settings["logfile"]?.value, "/var/log/pluto.log")
        XCTAssertEqual(config.conns.map(\.name), ["%default", "vti-common", "branch", "policy-only", "rw"])
        let conns = try RouteBasedConn.all(in: config)
        XCTAssertEqual(conns.map(\.name), ["branch", "rw"], "policy-only has no vti-interface")
        let branch = conns[0]
        XCTAssertEqual(branch.location, ConfigLocation(file: "/etc/ipsec.d/branch.conf", line: 1))
        XCTAssertEqual(branch.markIn, FirewallMark(value: 5))
        XCTAssertEqual(branch.markOut, FirewallMark(value: 6))
        XCTAssertEqual(branch.interfaceName, InterfaceName("vti01"))
        XCTAssertFalse(branch.routing)
        XCTAssertEqual(branch.leftUpdown, "/usr/libexec/ipsec/_updown", "the conn's own setting beats %default")
        let rw = conns[1]
        XCTAssertTrue(rw.routing, "from also=vti-common")
        XCTAssertTrue(rw.vtiShared)
        XCTAssertEqual(rw.leftSubnets, [IPPrefix("10.3.0.0/24")!, IPPrefix("10.4.0.0/24")!])
        XCTAssertEqual(rw.addressPools, [IPAddress("10.0.1.10")!...IPAddress("10.0.1.50")!])
        XCTAssertEqual(rw.leftUpdown, "/usr/libexec/vtictl/vti-updown", "from conn %default")
        XCTAssertEqual(rw.leftVTI, IPPrefix("10.0.1.1/24"))
    }

    /// libreswan 4.x takes an IPv6 pool only as a prefix; both forms mean the same range.
    func testAnAddressPoolAsAPrefix() throws {
        let config = try IPsecConfig(main: .init(file: "ipsec.conf", text: """
            conn rw6
                vti-interface=vti02
                mark=12
                rightaddresspool=2001:db8:1::/120
            conn rw4
                vti-interface=vti03
                mark=13
                rightaddresspool=10.0.2.0/28
            """), resolveInclude: { _, _ in [] })
        let conns = try RouteBasedConn.all(in: config)
        XCTAssertEqual(conns.first { $0.name == "rw6" }?.addressPools, [IPAddress("2001:db8:1::")!...IPAddress("2001:db8:1::ff")!])
        XCTAssertEqual(conns.first { $0.name == "rw4" }?.addressPools, [IPAddress("10.0.2.0")!...IPAddress("10.0.2.15")!])
    }

    func testMistakesNameTheFileAndLine() {
        let cases: [(String, String)] = [
            ("conn a\n    mark=5\n    mark=6\n", "/etc/ipsec.conf:3: mark set twice in this section (first at line 2)"),
            ("    left=1.2.3.4\n", "/etc/ipsec.conf:1: indented setting outside any 'conn' or 'config setup' section"),
            ("conn a\n    left\n", "/etc/ipsec.conf:2: expected key=value, found \"left\""),
            ("conn a\n    leftid=\"@west\n", "/etc/ipsec.conf:2: leftid: unterminated quote"),
            ("conn a b\n", "/etc/ipsec.conf:1: expected 'conn NAME'"),
            ("conn $(x)\n", "/etc/ipsec.conf:1: invalid conn name \"$(x)\""),
            ("connn a\n", "/etc/ipsec.conf:1: expected 'conn', 'config setup' or 'include' at the start of a line, found \"connn\""),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try IPsecConfig(main: .init(file: "/etc/ipsec.conf", text: text))) { error in
                XCTAssertEqual("\(error)", message)
            }
        }
        let invalid: [(String, String)] = [
            ("conn a\n    vti-interface=vti01\n", "/etc/ipsec.conf:1: conn a has vti-interface= but no mark= (the VTI's keys)"),
            ("conn a\n    vti-interface=vti01\n    mark=12/0xfffffffff\n", "/etc/ipsec.conf:3: mark=\"12/0xfffffffff\" is not a mark (VALUE/MASK)"),
            ("conn a\n    vti-interface=vti-far-too-long-name\n    mark=5\n", "/etc/ipsec.conf:2: vti-interface=\"vti-far-too-long-name\" is not a valid interface name (1-15 letters, digits, '.', '-' or '_')"),
            ("conn a\n    vti-interface=vti01\n    mark=5\n    vti-routing=maybe\n", "/etc/ipsec.conf:4: vti-routing=\"maybe\" is neither yes nor no"),
            ("conn a\n    vti-interface=vti01\n    mark=5\n    rightaddresspool=10.0.1.50-10.0.1.10\n", "/etc/ipsec.conf:4: rightaddresspool=\"10.0.1.50-10.0.1.10\" is neither FIRST-LAST nor a PREFIX/LENGTH"),
            ("conn a\n    vti-interface=vti01\n    mark=5\n    leftsubnet=10.0.0.0/33\n", "/etc/ipsec.conf:4: leftsubnet: \"10.0.0.0/33\" is not a subnet"),
            ("conn a\n    also=b\n    vti-interface=vti01\nconn b\n    also=a\n", "/etc/ipsec.conf:1: also= loop: a -> b -> a"),
            ("conn a\n    also=missing\n    vti-interface=vti01\n", "/etc/ipsec.conf:2: also=missing: no conn of that name"),
        ]
        for (text, message) in invalid {
            XCTAssertThrowsError(try RouteBasedConn.all(in: IPsecConfig(main: .init(file: "/etc/ipsec.conf", text: text)))) { error in
                XCTAssertEqual("\(error)", message)
            }
        }
    }

    func testIncludesNestAtMostTenDeep() {
        XCTAssertThrowsError(try IPsecConfig(main: .init(file: "/a.conf", text: "include /a.conf\n")) { _, _ in
            [.init(file: "/a.conf", text: "include /a.conf\n")]
        }) { error in
            XCTAssertEqual("\(error)", "/a.conf:1: includes nested more than 10 deep")
        }
    }

    func testTheTestBedsConfigsParse() throws {
        // The shape the test bed's scenarios write (Scripts/testbed.d/lib.sh, s2s_conf).
        let text = """
            config setup
            conn s2s
                left=192.0.2.1
                leftid=@west
                leftsubnet=10.1.0.0/24
                right=192.0.2.2
                rightsubnet=10.2.0.0/24
                mark=5/0xffffffff
                vti-interface=vti01
                vti-routing=yes
            """
        let conns = try RouteBasedConn.all(in: IPsecConfig(main: .init(file: "ipsec.conf", text: text)))
        XCTAssertEqual(conns.first?.rightSubnets, [IPPrefix("10.2.0.0/24")!])
        XCTAssertEqual(conns.first?.markIn, FirewallMark(value: 5))
    }

    /// A file edited on Windows: CRLF line ends must not glue the file into one line.
    func testCRLFLineEnds() throws {
        let unix = "conn s2s\n    left=192.0.2.1\n    right=192.0.2.2\n    mark=5/0xffffffff\n    vti-interface=vti01\n"
        let windows = unix.replacingOccurrences(of: "\n", with: "\r\n")
        let expected = try RouteBasedConn.all(in: IPsecConfig(main: .init(file: "ipsec.conf", text: unix)))
        XCTAssertEqual(expected.count, 1)
        XCTAssertEqual(try RouteBasedConn.all(in: IPsecConfig(main: .init(file: "ipsec.conf", text: windows))), expected)
    }
}
