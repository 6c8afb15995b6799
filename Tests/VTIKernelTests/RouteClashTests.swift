import Netlink
@testable import VTIKernel
import VTIModel
import XCTest

/// What the executor does when adding a route finds one at its place (the kernel said EEXIST),
/// without a kernel: the same rule `HookApplierHostTests` checks against a real one.
final class RouteClashTests: XCTestCase {
    private func route(_ destination: String, protocol number: UInt8, interface: Int32 = 7, gateway: String? = nil, metric: UInt32? = nil) -> Route {
        let parts = destination.split(separator: "/")
        let address = InetAddress(String(parts[0]))!
        return Route(destination: InetPrefix(address, length: UInt8(parts[1])!)!, table: .main, protocol: RouteProtocol(rawValue: number),
                     outputInterface: interface, gateway: gateway.flatMap { InetAddress($0) }, metric: metric)
    }

    func testOursAsWantedIsLeftAsItIs() {
        let wanted = route("10.0.1.10/32", protocol: 157)
        XCTAssertEqual(RouteClash(wanted, among: [route("10.0.0.0/8", protocol: 4), wanted]), .ours)
    }

    func testOursThroughAnotherDeviceIsReplaced() {
        XCTAssertEqual(RouteClash(route("10.0.1.10/32", protocol: 157), among: [route("10.0.1.10/32", protocol: 157, interface: 9)]), .oursDiffering)
    }

    func testAnotherProtocolsRouteIsLeftAlone() {
        let bird = route("10.0.1.10/32", protocol: 12, gateway: "192.0.2.254")
        XCTAssertEqual(RouteClash(route("10.0.1.10/32", protocol: 157), among: [bird]), .others(bird))
    }

    func testARouteGoneSinceTheAddIsAddedAgain() {
        XCTAssertEqual(RouteClash(route("10.0.1.10/32", protocol: 157), among: [route("10.0.1.11/32", protocol: 157)]), .vanished)
    }

    /// IPv6 routes added without a metric get the kernel's 1024: another protocol's route there is
    /// still someone else's (comparing with 0 would have taken it for gone, and replaced it).
    func testAnIPv6RouteWithoutAMetricMeetsTheKernelsDefault() {
        let other = route("2001:db8:1::/64", protocol: 12, metric: 1024)
        XCTAssertEqual(RouteClash(route("2001:db8:1::/64", protocol: 157), among: [other]), .others(other))
    }

    /// The address the snapshot looks a planned route up by: inside the prefix, never 0.0.0.0 or ::
    /// (which the kernel answers with the loopback route).
    func testTheLookupAddressOfAPlannedRoute() {
        XCTAssertEqual(probe(inside: IPPrefix("0.0.0.0/1")!), InetAddress("64.0.0.0"))
        XCTAssertEqual(probe(inside: IPPrefix("128.0.0.0/1")!), InetAddress("128.0.0.0"))
        XCTAssertEqual(probe(inside: IPPrefix("::/1")!), InetAddress("4000::"))
        XCTAssertEqual(probe(inside: IPPrefix("10.0.1.10/32")!), InetAddress("10.0.1.10"))
        XCTAssertEqual(probe(inside: IPPrefix("0.0.0.0/0")!), InetAddress("128.0.0.0"))
    }
}
