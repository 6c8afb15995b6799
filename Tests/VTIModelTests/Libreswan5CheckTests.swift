import XCTest
@testable import VTIModel

/// `vtictl check`'s libreswan 5.x rules: one configuration per rule, with its message and line.
final class Libreswan5CheckTests: XCTestCase {
    private func findings(_ text: String, _ version: String?) throws -> [String] {
        let config = try IPsecConfig(main: .init(file: "ipsec.conf", text: text))
        return checkForLibreswan5(config, version: version.flatMap { LibreswanVersion($0) }).map(\.description)
    }

    private let vtiConn = """
        conn a
            left=192.0.2.1
            right=192.0.2.2
            mark=5/0xffffffff
            vti-interface=vti01
            vti-routing=yes
            leftupdown=/usr/libexec/vtictl/vti-updown
        """

    func testVersions() {
        XCTAssertEqual(LibreswanVersion("5.2-2.2"), LibreswanVersion(major: 5, minor: 2))
        XCTAssertEqual(LibreswanVersion("Libreswan 4.10"), LibreswanVersion(major: 4, minor: 10))
        XCTAssertEqual(LibreswanVersion("v5.4"), LibreswanVersion(major: 5, minor: 4))
        XCTAssertNil(LibreswanVersion("five"))
        XCTAssertLessThan(LibreswanVersion(major: 4, minor: 10), LibreswanVersion(major: 5, minor: 2))
        XCTAssertLessThan(LibreswanVersion(major: 5, minor: 2), LibreswanVersion(major: 5, minor: 4))
    }

    /// 4.10, or a version not known: nothing to say about a VTI conn.
    func testNothingFor4xOrAnUnknownVersion() throws {
        XCTAssertEqual(try findings(vtiConn, "4.10"), [])
        XCTAssertEqual(try findings(vtiConn, nil), [])
    }

    func testDeprecatedVTIKeywordsPointToIPsecInterface() throws {
        XCTAssertEqual(try findings(vtiConn, "5.2"), [
            "ipsec.conf:5: warning: conn a: vti-interface= (and vti-routing=) is deprecated in libreswan 5.2 in favour of ipsec-interface= (XFRM interfaces, created by pluto); it still works, and vti-updown and vtid handle it as before",
        ])
    }

    func testIKEv1NeedsIkev1PolicyAcceptOn5() throws {
        let ikev1 = """
            conn old
                left=192.0.2.1
                right=192.0.2.2
                keyexchange=ikev1
            conn older
                left=192.0.2.1
                right=192.0.2.3
                ikev2=no
            conn fine
                left=192.0.2.1
                right=192.0.2.4
                ikev2=insist
            """
        XCTAssertEqual(try findings(ikev1, "5.2"), [
            "ipsec.conf:4: error: conn old is IKEv1: libreswan 5.2 drops IKEv1 unless config setup has ikev1-policy=accept (5.0's default is drop)",
            "ipsec.conf:8: error: conn older is IKEv1: libreswan 5.2 drops IKEv1 unless config setup has ikev1-policy=accept (5.0's default is drop)",
        ])
        XCTAssertEqual(try findings("config setup\n    ikev1-policy=accept\n" + ikev1, "5.2"), [])
        XCTAssertEqual(try findings(ikev1, "4.10"), [], "4.x accepts IKEv1 by default")
    }

    /// Debian's libreswan drops IKEv1 by default from 4.5-2 on (the test bed's 4.10-2+deb12u1
    /// refuses to load an IKEv1 conn without ikev1-policy=accept); upstream 4.x accepts it.
    func testDebiansLibreswan4DropsIKEv1Too() throws {
        let l2tp = """
            config setup
                uniqueids=yes
            conn l2tp-psk
                left=%defaultroute
                leftprotoport=17/1701
                right=%any
                rightprotoport=17/%any
                type=transport
                authby=secret
                ikev2=no
            """
        func debian(_ text: String, _ version: String) throws -> [String] {
            checkForLibreswan5(try IPsecConfig(main: .init(file: "ipsec.conf", text: text)), version: LibreswanVersion(version), debianBuild: true)
                .map(\.description)
        }
        XCTAssertEqual(try debian(l2tp, "4.10-2+deb12u1"), [
            "ipsec.conf:10: error: conn l2tp-psk is IKEv1: Debian's libreswan 4.10 drops IKEv1 unless config setup has ikev1-policy=accept (Debian's default since 4.5-2 is drop; pluto refuses to load the conn)",
        ])
        XCTAssertEqual(try debian(l2tp.replacingOccurrences(of: "uniqueids=yes", with: "ikev1-policy=accept"), "4.10-2+deb12u1"), [])
        XCTAssertEqual(try debian(l2tp, "4.3-1"), [], "Debian's 4.3 still accepted IKEv1")
        XCTAssertEqual(try findings(l2tp, "4.10"), [], "a 4.10 named with --libreswan may be upstream's, which accepts IKEv1")
        XCTAssertEqual(try findings(l2tp, "5.2"), [
            "ipsec.conf:10: error: conn l2tp-psk is IKEv1: libreswan 5.2 drops IKEv1 unless config setup has ikev1-policy=accept (5.0's default is drop)",
        ])
    }

    func testUpdownConfigNeeds54AndNoShellSyntax() throws {
        let exec = """
            conn a
                left=192.0.2.1
                right=192.0.2.2
                leftupdown="/usr/libexec/vtictl/vti-updown --config /etc/vtictl/hook.conf"
                updown-config=exec
            """
        XCTAssertEqual(try findings(exec, "5.4"), [])
        XCTAssertEqual(try findings(exec, "5.2"), [
            "ipsec.conf:5: error: conn a: updown-config= needs libreswan 5.4; libreswan 5.2 refuses the file (unrecognized keyword)",
        ])
        let quoted = exec.replacingOccurrences(of: "--config /etc/vtictl/hook.conf", with: "--config '/etc/my vtictl/hook.conf'")
        XCTAssertEqual(try findings(quoted, "5.4"), [
            "ipsec.conf:4: error: conn a: with updown-config=exec pluto execs leftupdown= split on spaces, without a shell: quotes, variables and other shell syntax in \"/usr/libexec/vtictl/vti-updown --config '/etc/my vtictl/hook.conf'\" reach the program as they are",
        ])
        XCTAssertEqual(try findings(exec.replacingOccurrences(of: "=exec", with: "=fork"), "5.4"), [
            "ipsec.conf:5: error: conn a: updown-config= knows exec and async, not fork",
        ])
    }

    /// async hands the hook the first selector pair only.
    func testAsyncWithSeveralSubnetsLosesRoutes() throws {
        let async = """
            conn a
                left=192.0.2.1
                right=192.0.2.2
                leftsubnet=10.1.0.0/24
                rightsubnets={10.2.0.0/24 10.4.0.0/24}
                leftupdown=/usr/libexec/vtictl/vti-updown
                rightupdown-config=async
            """
        XCTAssertEqual(try findings(async, "5.4"), [
            "ipsec.conf:7: error: conn a: rightupdown-config=async passes the hook only the first selector pair, so the other subnets of {10.2.0.0/24 10.4.0.0/24} get no routes: use one subnet pair per conn, or drop async",
        ])
    }
}
