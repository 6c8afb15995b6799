import Foundation
import XCTest
@testable import Netlink
import KernelTestSupport

/// XFRM interfaces against a kernel that has them (`CONFIG_XFRM_INTERFACE`): neither the host's nor
/// User-Mode Linux's does, Debian's stock kernel under qemu does. These tests run in that guest,
/// started by TestbedScenarioTests.testXfrmInterfacesAndMSSClampTableUnderQemu, which fails if any of
/// them fails or does not run. Run anywhere else they are skipped with that reason.
final class GuestXfrmInterfaceTests: XCTestCase {
    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["VTICTL_GUEST_XFRMI"] == "1" else {
            throw XCTSkip("needs a kernel with xfrm_interface: runs under qemu through TestbedScenarioTests.testXfrmInterfacesAndMSSClampTableUnderQemu")
        }
    }

    func testCreateXfrmInterfacesAndReadThemBack() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            try socket.createLink(named: "dummy0", kind: "dummy")
            let dummy = try XCTUnwrap(socket.link(named: "dummy0"))

            // Bound to an underlying device, as libreswan makes ipsec1 (`ipsec-interface=1`).
            let bound = XfrmInterfaceParameters(interfaceID: 7, underlyingIndex: UInt32(dummy.index))
            try socket.createXfrmInterface(named: "ipsec7", bound, up: true)
            let link = try XCTUnwrap(socket.link(named: "ipsec7"))
            XCTAssertEqual(link.kind, "xfrm")
            XCTAssertEqual(link.xfrmInterface, bound)
            XCTAssertNil(link.vti)
            XCTAssertTrue(link.isUp)
            // IFLA_LINK names the underlying device too.
            XCTAssertEqual(link.parentIndex, dummy.index)
            let shown = try ip("-d", "link", "show", "ipsec7")
            XCTAssertTrue(shown.contains("ipsec7@dummy0:"), shown)
            XCTAssertTrue(shown.contains("xfrm if_id 0x7"), shown)

            // Without one (`ip link add NAME type xfrm if_id N`): the kernel reports link 0.
            try socket.createXfrmInterface(named: "xfrm9", XfrmInterfaceParameters(interfaceID: 9))
            XCTAssertEqual(try socket.link(named: "xfrm9")?.xfrmInterface, XfrmInterfaceParameters(interfaceID: 9))
            XCTAssertTrue(try ip("-d", "link", "show", "xfrm9").contains("xfrm if_id 0x9"))

            // Made by iproute2, read by us.
            _ = try ip("link", "add", "ipsec3", "type", "xfrm", "dev", "dummy0", "if_id", "3")
            XCTAssertEqual(try socket.link(named: "ipsec3")?.xfrmInterface,
                           XfrmInterfaceParameters(interfaceID: 3, underlyingIndex: UInt32(dummy.index)))

            // The same name again is refused.
            XCTAssertThrowsError(try socket.createXfrmInterface(named: "ipsec7", bound)) {
                XCTAssertEqual(($0 as? NetlinkError)?.errno, .fileExists)
            }
            // A dump decodes them all; nothing else in the namespace is an XFRM interface.
            let interfaces = try socket.links().compactMap { link in link.xfrmInterface.map { (link.name, $0.interfaceID) } }
            XCTAssertEqual(interfaces.map(\.0).sorted(), ["ipsec3", "ipsec7", "xfrm9"])
            XCTAssertEqual(interfaces.map(\.1).sorted(), [3, 7, 9])

            try socket.deleteLink(index: link.index)
            XCTAssertNil(try socket.link(named: "ipsec7"))
        }
    }
}
