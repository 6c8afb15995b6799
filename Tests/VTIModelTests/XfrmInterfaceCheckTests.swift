import XCTest
@testable import VTIModel

/// `checkXfrmInterfaceSettings`: how ipsec-interface= conns are written, per libreswan release.
final class XfrmInterfaceCheckTests: XCTestCase {
    private func findings(_ text: String, version: LibreswanVersion? = LibreswanVersion(major: 5, minor: 2)) throws -> [String] {
        checkXfrmInterfaceSettings(try IPsecConfig(main: .init(file: "ipsec.conf", text: text)), version: version).map(\.description)
    }

    private let conn = "conn a\n    ipsec-interface=1\n"

    /// ipsec-interface-managed= is 5.2's: 4.10, 5.0 and 5.1 do not know the keyword.
    func testIpsecInterfaceManagedNeedsLibreswan52() throws {
        let unmanaged = "config setup\n    ipsec-interface-managed=no\n" + conn
        XCTAssertEqual(try findings(unmanaged, version: LibreswanVersion(major: 4, minor: 10)), [
            "ipsec.conf:2: error: config setup: ipsec-interface-managed=no needs libreswan 5.2; libreswan 4.10 refuses the file (unrecognized keyword) and always creates the XFRM interfaces itself",
        ])
        XCTAssertEqual(try findings(unmanaged, version: LibreswanVersion(major: 5, minor: 1)).count, 1)
        XCTAssertEqual(try findings("config setup\n    ipsec-interface-managed=yes\n" + conn, version: LibreswanVersion(major: 5, minor: 0)), [
            "ipsec.conf:2: error: config setup: ipsec-interface-managed=yes needs libreswan 5.2; libreswan 5.0 refuses the file (unrecognized keyword)",
        ])
        XCTAssertEqual(try findings(unmanaged), [], "5.2 knows it")
        XCTAssertEqual(try findings(unmanaged, version: nil), [], "an unknown release is not judged")
    }

    /// VTI's settings beside ipsec-interface= do nothing: a warning where each is written, once.
    func testVTISettingsBesideIpsecInterfaceAreIgnored() throws {
        XCTAssertEqual(try findings(conn + "    vti-routing=yes\n    vti-shared=yes\n    leftvti=10.255.0.1/30\n"), [
            "ipsec.conf:3: warning: conn a: vti-routing=yes is ignored beside ipsec-interface=1 (ipsec.conf:2): every ipsec-interface= conn routes into its device (PLUTO_XFRMI_ROUTE=yes)",
            "ipsec.conf:4: warning: conn a: vti-shared=yes is ignored beside ipsec-interface=1 (ipsec.conf:2): one XFRM interface serves any number of conns and peers",
            "ipsec.conf:5: warning: conn a: leftvti=10.255.0.1/30 is ignored beside ipsec-interface=1 (ipsec.conf:2): the XFRM interface's address is leftinterface-ip=",
        ])
        XCTAssertEqual(try findings("conn %default\n    vti-routing=yes\n" + conn + "conn b\n    ipsec-interface=2\n").count, 1, "once for the %default line")
        XCTAssertEqual(try findings("conn a\n    ipsec-interface=no\n    vti-routing=yes\n"), [], "no XFRM interface")
    }
}
