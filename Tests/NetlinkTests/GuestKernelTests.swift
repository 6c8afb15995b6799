import Foundation
import XCTest
@testable import Netlink
import KernelTestSupport

/// What the host kernel cannot do (VTI devices, ESP SAs) against a real kernel that can: these
/// tests run inside the User-Mode Linux test bed, started by `UMLNetlinkTests` below, which fails
/// if any of them fails or does not run. Run directly on the host they are skipped with that reason.
final class GuestKernelTests: XCTestCase {
    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["VTICTL_GUEST"] == "1" else {
            throw XCTSkip("needs a kernel with ip_vti and esp4: runs inside User-Mode Linux through UMLNetlinkTests.testGuestKernelSuite")
        }
    }

    func testCreateVTIAndReadItsParametersBack() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            let parameters = VTIParameters(local: address("192.0.2.1"), remote: address("192.0.2.2"), inputKey: 12, outputKey: 13)
            try socket.createVTI(named: "vti01", parameters)
            let link = try XCTUnwrap(socket.link(named: "vti01"))
            XCTAssertEqual(link.kind, "vti")
            XCTAssertEqual(link.vti, parameters)
            let shown = try ip("-d", "link", "show", "vti01")
            XCTAssertTrue(shown.contains("vti remote 192.0.2.2 local 192.0.2.1 ikey 0.0.0.12 okey 0.0.0.13"), shown)
            try socket.setLink(index: link.index, up: true)
            try socket.setLink(index: link.index, mtu: 1438)
            let configured = try XCTUnwrap(socket.link(named: "vti01"))
            XCTAssertTrue(configured.isUp)
            XCTAssertEqual(configured.mtu, 1438)
            // The same name again is refused, and the kernel's original device stays.
            XCTAssertThrowsError(try socket.createVTI(named: "vti01", parameters)) {
                XCTAssertEqual(($0 as? NetlinkError)?.errno, .fileExists)
            }
            // A shared road-warrior device: any remote.
            let shared = VTIParameters(local: address("192.0.2.1"), remote: .any(.ipv4), inputKey: 20, outputKey: 20)
            try socket.createVTI(named: "vti02", shared)
            XCTAssertEqual(try socket.link(named: "vti02")?.vti, shared)
            // ip_vti0 and ip6_vti0 are the fallback devices the kernel puts in every namespace once
            // ip_vti and ip6_vti are loaded.
            XCTAssertEqual(Set(try socket.links().compactMap { $0.vti == nil ? nil : $0.name }), ["ip_vti0", "ip6_vti0", "vti01", "vti02"])
            try socket.deleteLink(index: link.index)
            XCTAssertNil(try socket.link(named: "vti01"))
        }
    }

    func testCreateAnIPv6VTI() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            let parameters = VTIParameters(local: address("2001:db8::1"), remote: address("2001:db8::2"), inputKey: 7, outputKey: 8)
            try socket.createVTI(named: "vti6a", parameters)
            let link = try XCTUnwrap(socket.link(named: "vti6a"))
            XCTAssertEqual(link.kind, "vti6")
            XCTAssertEqual(link.vti, parameters)
            let shown = try ip("-d", "link", "show", "vti6a")
            XCTAssertTrue(shown.contains("vti6 remote 2001:db8::2 local 2001:db8::1"), shown)
        }
    }

    func testSecurityAssociationsDumpWithMarksAlgorithmsAndCounters() throws {
        try inFreshNetworkNamespace(self) {
            let monitor = try XfrmMonitor()
            let socket = try NetlinkSocket(.route)
            try setUpTunnel(socket)
            let xfrm = try NetlinkSocket(.xfrm)
            let sas = try xfrm.securityAssociations()
            XCTAssertEqual(sas.count, 2)
            let outbound = try XCTUnwrap(sas.first { $0.spi == 0x1000 })
            XCTAssertEqual(outbound.source, address("192.0.2.1"))
            XCTAssertEqual(outbound.destination, address("192.0.2.2"))
            XCTAssertEqual(outbound.reqid, 7)
            XCTAssertEqual(outbound.mode, 1)
            XCTAssertEqual(outbound.mark, XfrmMark(value: 5, mask: 0xffff_ffff))
            XCTAssertEqual(outbound.algorithms.aead?.name, "rfc4106(gcm(aes))")
            XCTAssertEqual(outbound.algorithms.aead?.icvBits, 128)
            XCTAssertEqual(outbound.packets, 0)

            // Traffic routed into the VTI is encrypted by the outbound SA: its counters move, and
            // the device's too. Nobody answers, which does not matter here.
            _ = runChild(["/bin/ping", "-c", "3", "-i", "0.2", "-W", "1", "10.9.0.2"])
            let after = try XCTUnwrap(try xfrm.securityAssociations().first { $0.spi == 0x1000 })
            XCTAssertGreaterThanOrEqual(after.packets, 3)
            XCTAssertGreaterThan(after.bytes, 0)
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(socket.link(named: "vti01")?.statistics).transmittedPackets, 3)

            try ip("xfrm", "state", "delete", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "spi", "0x1000", "mark", "5")
            var seen: [XfrmNotification] = []
            while let batch = try Optional(monitor.next(timeoutMilliseconds: 1000)), !batch.isEmpty { seen += batch }
            XCTAssertTrue(seen.contains { if case .securityAssociationAdded(let sa) = $0 { sa.spi == 0x1000 } else { false } }, "\(seen)")
            XCTAssertTrue(seen.contains { if case .securityAssociationDeleted(let sa) = $0 {
                sa.spi == 0x1000 && sa.mark?.value == 5 && sa.packets >= 3 } else { false } }, "\(seen)")
            XCTAssertTrue(seen.contains { if case .policyAdded(let policy) = $0 { policy.mark?.value == 5 } else { false } }, "\(seen)")
        }
    }

    func testHardExpiryIsAnnounced() throws {
        try inFreshNetworkNamespace(self) {
            let monitor = try XfrmMonitor()
            try ip("xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "spi", "0x2000",
                   "reqid", "9", "mode", "tunnel", "mark", "6", "aead", "rfc4106(gcm(aes))", "0x" + String(repeating: "22", count: 20), "128",
                   // Hard well after soft: the kernel's timer skips the soft expiry if it first runs
                   // after the hard one is due, which a loaded machine (UML is a process) made happen.
                   "limit", "time-soft", "1", "limit", "time-hard", "5")
            var seen: [XfrmNotification] = []
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline, !seen.contains(where: { if case .securityAssociationExpired(_, hard: true) = $0 { true } else { false } }) {
                seen += try monitor.next(timeoutMilliseconds: 500)
            }
            XCTAssertTrue(seen.contains { if case .securityAssociationExpired(let sa, hard: false) = $0 { sa.spi == 0x2000 } else { false } }, "soft expiry: \(seen)")
            XCTAssertTrue(seen.contains { if case .securityAssociationExpired(let sa, hard: true) = $0 { sa.spi == 0x2000 && sa.mark?.value == 6 } else { false } }, "hard expiry: \(seen)")
        }
    }

    /// One end of a VTI tunnel: dummy0 192.0.2.1/24, vti01 to 192.0.2.2 with key 5 and
    /// 10.9.0.1/30, an outbound and inbound SA and policy marked 5, as libreswan would install.
    /// What the hook's snapshot asks in one batch (`lookUp`): a device by name (and one that is
    /// not there), the routing entries of a route and of a local address, and the SAs by SPI with
    /// a mark (a wrong mark finds nothing: the kernel matches marked SAs by mark).
    func testLookupsReadDevicesRoutingEntriesAndSAsByKey() throws {
        try inFreshNetworkNamespace(self) {
            let socket = try NetlinkSocket(.route)
            try setUpTunnel(socket)
            try ip("route", "add", "10.9.1.0/24", "dev", "vti01", "proto", "157")
            let vti = try XCTUnwrap(socket.link(named: "vti01"))
            let dummy = try XCTUnwrap(socket.link(named: "dummy0"))
            let answers = socket.lookUp([.linkNamed("vti01"), .linkNamed("vti99"), .routeMatch(address("10.9.1.0")), .routeMatch(address("192.0.2.1"))])
            guard answers.count == 4, case .link(let link) = answers[0], case .route(let route) = answers[2], case .route(let local) = answers[3] else {
                return XCTFail("\(answers)")
            }
            XCTAssertEqual(link.vti, vti.vti)
            XCTAssertEqual(answers[1], .absent)
            XCTAssertEqual(route.destination, try prefix("10.9.1.0/24"))
            XCTAssertEqual(route.protocol.rawValue, 157)
            XCTAssertEqual(route.outputInterface, vti.index)
            XCTAssertEqual(local.type, .local)
            XCTAssertEqual(local.outputInterface, dummy.index, "the entry of a local address names the device holding it")

            let xfrm = try NetlinkSocket(.xfrm)
            let sas = xfrm.lookUp([.securityAssociation(destination: address("192.0.2.2"), spi: 0x1000, mark: 5),
                                   .securityAssociation(destination: address("192.0.2.2"), spi: 0x1000, mark: 6),
                                   .securityAssociation(destination: address("192.0.2.1"), spi: 0x1001, mark: 5)])
            guard sas.count == 3, case .securityAssociation(let outbound) = sas[0], case .securityAssociation(let inbound) = sas[2] else {
                return XCTFail("\(sas)")
            }
            XCTAssertEqual(outbound.spi, 0x1000)
            XCTAssertEqual(outbound.algorithms.aead?.name, "rfc4106(gcm(aes))")
            XCTAssertEqual(sas[1], .absent)
            XCTAssertEqual(inbound.spi, 0x1001)
        }
    }

    private func setUpTunnel(_ socket: NetlinkSocket) throws {
        try socket.createLink(named: "dummy0", kind: "dummy")
        let dummy = try XCTUnwrap(socket.link(named: "dummy0"))
        try socket.setLink(index: dummy.index, up: true)
        try socket.addAddress(InterfaceAddress(interfaceIndex: dummy.index, prefix: try prefix("192.0.2.1/24")))
        try socket.createVTI(named: "vti01", VTIParameters(local: address("192.0.2.1"), remote: address("192.0.2.2"), inputKey: 5, outputKey: 5))
        let vti = try XCTUnwrap(socket.link(named: "vti01"))
        try socket.setLink(index: vti.index, up: true)
        try socket.addAddress(InterfaceAddress(interfaceIndex: vti.index, prefix: try prefix("10.9.0.1/30")))
        let key = "0x" + String(repeating: "11", count: 20)
        for (source, destination, spi) in [("192.0.2.1", "192.0.2.2", "0x1000"), ("192.0.2.2", "192.0.2.1", "0x1001")] {
            try ip("xfrm", "state", "add", "src", source, "dst", destination, "proto", "esp", "spi", spi, "reqid", "7",
                   "mode", "tunnel", "mark", "5", "aead", "rfc4106(gcm(aes))", key, "128")
        }
        for direction in ["out", "in", "fwd"] {
            let (source, destination) = direction == "out" ? ("192.0.2.1", "192.0.2.2") : ("192.0.2.2", "192.0.2.1")
            try ip("xfrm", "policy", "add", "dir", direction, "mark", "5", "tmpl", "src", source, "dst", destination,
                   "proto", "esp", "reqid", "7", "mode", "tunnel")
        }
    }
}

/// Boots the UML test bed and runs GuestKernelTests inside it, against a kernel with VTI and ESP.
final class UMLNetlinkTests: XCTestCase {
    func testGuestKernelSuite() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let testbed = root.appendingPathComponent("Scripts/testbed").path
        guard FileManager.default.isExecutableFile(atPath: testbed) else {
            XCTFail("Scripts/testbed is missing: the UML test bed is needed to test VTI and XFRM against a real kernel")
            return
        }
        let result = runChild([testbed, "run", "--timeout", "300", "--env", "VTICTL_GUEST=1", "--",
                               currentExecutable(), "NetlinkTests.GuestKernelTests"])
        let summary = result.output.split(separator: "\n").filter { $0.contains("Executed") || $0.contains("error") || $0.contains("skipped") }
        XCTAssertEqual(result.status, 0, "GuestKernelTests in UML:\n\(result.output.suffix(4000))")
        XCTAssertTrue(result.output.contains("Executed 5 tests, with 0 failures"), "all five guest tests ran:\n\(summary.joined(separator: "\n"))")
        XCTAssertFalse(result.output.contains("skipped"), "nothing skipped inside the guest:\n\(summary.joined(separator: "\n"))")
    }
}
