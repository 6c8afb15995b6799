import Foundation
import XCTest
@testable import Netlink

/// Our requests, byte for byte against what iproute2 sends for the same operation
/// (Fixtures/iproute2, recorded by Scripts/capture-netlink-fixtures). In those recordings veth0 has
/// ifindex 3. Bytes 8-15 (sequence and port id) are ignored.
final class GoldenRequestTests: XCTestCase {
    private let veth0: Int32 = 3
    private let ourProtocol = RouteProtocol(rawValue: 250)

    func testLinkRequestsMatchIproute2() throws {
        try expect("vti-create", .createVTI(named: "vti01", VTIParameters(
            local: address("192.0.2.1"), remote: address("192.0.2.2"), inputKey: 5, outputKey: 6)))
        try expect("xfrm-create", .createXfrmInterface(named: "xfrm7", XfrmInterfaceParameters(interfaceID: 7, underlyingIndex: UInt32(veth0))))
        try expect("xfrm-create-nodev", .createXfrmInterface(named: "xfrm9", XfrmInterfaceParameters(interfaceID: 9)))
        try expect("xfrm-create-external", .createXfrmInterface(named: "xfrmx", XfrmInterfaceParameters(interfaceID: 0, collectsMetadata: true)))
        try expect("veth-create", .createVethPair(named: "vethA", peer: "vethB"))
        try expect("dummy-create", .createLink(named: "dummy0", kind: "dummy"))
        try expect("link-up", .setLink(index: veth0, up: true))
        try expect("link-down", .setLink(index: veth0, up: false))
        try expect("link-mtu", .setLink(index: veth0, mtu: 1400))
        try expect("link-delete", .deleteLink(index: veth0))
    }

    func testAddressRequestsMatchIproute2() throws {
        let socket = try NetlinkSocket(.route)
        let v4 = InterfaceAddress(interfaceIndex: veth0, prefix: try prefix("10.0.0.1/24"))
        let v6 = InterfaceAddress(interfaceIndex: veth0, prefix: try prefix("2001:db8::1/64"))
        try expect("address-add-v4", socket.addressRequest(RTM_NEWADDR_VALUE, flags: createExclusive, v4, verb: "add"))
        try expect("address-add-v6", socket.addressRequest(RTM_NEWADDR_VALUE, flags: createExclusive, v6, verb: "add"))
        try expect("address-replace-v4", socket.addressRequest(RTM_NEWADDR_VALUE, flags: createReplace, v4, verb: "replace"))
        try expect("address-delete-v4", socket.addressRequest(RTM_DELADDR_VALUE, flags: 0, v4, verb: "delete"))
    }

    func testRouteRequestsMatchIproute2() throws {
        let socket = try NetlinkSocket(.route)
        let subnet = Route(destination: try prefix("10.1.0.0/24"), protocol: ourProtocol, outputInterface: veth0, metric: 10)
        try expect("route-add-v4", socket.routeRequest(.add, subnet))
        try expect("route-replace-v4", socket.routeRequest(.replace, subnet))
        try expect("route-delete-v4", socket.routeRequest(.delete, subnet))
        try expect("route-add-v4-host", socket.routeRequest(.add, Route(
            destination: try prefix("10.0.1.10/32"), protocol: ourProtocol, outputInterface: veth0)))
        try expect("route-add-v4-table", socket.routeRequest(.add, Route(
            destination: try prefix("10.2.0.0/16"), table: RouteTable(rawValue: 1000), protocol: ourProtocol,
            outputInterface: veth0, gateway: address("10.0.0.254"))))
        try expect("route-add-v4-mtu", socket.routeRequest(.add, Route(
            destination: try prefix("10.3.0.0/24"), protocol: ourProtocol, outputInterface: veth0,
            preferredSource: address("10.0.0.1"), mtu: 1400)))
        try expect("route-add-v6", socket.routeRequest(.add, Route(
            destination: try prefix("2001:db8:1::/48"), protocol: ourProtocol, outputInterface: veth0, metric: 1024)))
        try expect("route-add-v6-gateway", socket.routeRequest(.add, Route(
            destination: try prefix("2001:db8:2::/48"), protocol: ourProtocol, outputInterface: veth0,
            gateway: address("2001:db8::fe"))))
    }

    func testRuleAndNeighbourRequestsMatchIproute2() throws {
        let socket = try NetlinkSocket(.route)
        let fromPrefix = RoutingRule(family: .ipv4, priority: 1000, source: try prefix("203.0.113.0/24"),
                                     table: RouteTable(rawValue: 100), protocol: ourProtocol)
        try expect("rule-add-from", socket.ruleRequest(RTM_NEWRULE_VALUE, flags: createExclusive, fromPrefix, verb: "add"))
        try expect("rule-delete-from", socket.ruleRequest(RTM_DELRULE_VALUE, flags: 0, fromPrefix, verb: "delete"))
        try expect("rule-add-fwmark", socket.ruleRequest(RTM_NEWRULE_VALUE, flags: createExclusive, RoutingRule(
            family: .ipv4, priority: 1001, table: RouteTable(rawValue: 1000), firewallMark: 5, firewallMask: 0xff,
            protocol: ourProtocol), verb: "add"))
        try expect("rule-add-v6", socket.ruleRequest(RTM_NEWRULE_VALUE, flags: createExclusive, RoutingRule(
            family: .ipv6, priority: 1002, source: try prefix("2001:db8:5::/48"), destination: try prefix("2001:db8:6::/48"),
            table: RouteTable(rawValue: 200), protocol: ourProtocol), verb: "add"))
        let proxy = ProxyNeighbour(interfaceIndex: veth0, address: address("10.0.0.5"))
        try expect("neighbour-proxy-add", socket.proxyRequest(RTM_NEWNEIGH_VALUE, flags: createReplace, proxy, verb: "add"))
        try expect("neighbour-proxy-delete", socket.proxyRequest(RTM_DELNEIGH_VALUE, flags: 0, proxy, verb: "delete"))
    }

    // MARK: - Helpers

    private func expect(_ fixture: String, _ request: NetlinkSocket.Request, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try loadFixture(fixture)
        let actual = try NetlinkSocket.encodedBytes(of: request)
        guard actual.count == expected.bytes.count else {
            XCTFail("\(fixture) (\(expected.command)): \(actual.count) bytes, iproute2 sent \(expected.bytes.count)\nours:     \(hex(actual))\niproute2: \(hex(expected.bytes))", file: file, line: line)
            return
        }
        for index in actual.indices where !(8..<16).contains(index) && actual[index] != expected.bytes[index] {
            XCTFail("\(fixture) (\(expected.command)): first difference at byte \(index)\nours:     \(hex(actual))\niproute2: \(hex(expected.bytes))", file: file, line: line)
            return
        }
    }
}

let createExclusive: UInt16 = 0x600
let createReplace: UInt16 = 0x500
let RTM_NEWADDR_VALUE: UInt16 = 20
let RTM_DELADDR_VALUE: UInt16 = 21
let RTM_NEWRULE_VALUE: UInt16 = 32
let RTM_DELRULE_VALUE: UInt16 = 33
let RTM_NEWNEIGH_VALUE: UInt16 = 28
let RTM_DELNEIGH_VALUE: UInt16 = 29

struct Fixture {
    var command: String
    var bytes: [UInt8]
}

func loadFixture(_ name: String) throws -> Fixture {
    guard let url = Bundle.module.url(forResource: name, withExtension: "hex", subdirectory: "Fixtures/iproute2") else {
        throw FixtureError(message: "missing fixture Fixtures/iproute2/\(name).hex; run Scripts/capture-netlink-fixtures")
    }
    let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
    let command = lines.first.map { String($0.dropFirst(2)) } ?? name
    let bytes = lines.filter { !$0.hasPrefix("#") }.flatMap { $0.split(separator: " ") }.compactMap { UInt8($0, radix: 16) }
    return Fixture(command: command, bytes: bytes)
}

struct FixtureError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
}

func address(_ text: String) -> InetAddress {
    guard let address = InetAddress(text) else { preconditionFailure("test address \(text)") }
    return address
}

func prefix(_ text: String) throws -> InetPrefix {
    guard let prefix = InetPrefix(text) else { throw FixtureError(message: "bad test prefix \(text)") }
    return prefix
}
