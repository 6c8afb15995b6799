import VTIModel
import XCTest

/// Two gateways' files side by side (`vtictl check --peer-ipsec-conf`): overlapping pools are
/// errors at this gateway's line that name the other's file and line; disjoint pools, pools of
/// another family and a template shared through `also=` are not.
final class GatewayPoolsTests: XCTestCase {
    private let east = """
        conn %default
            keyexchange=ikev2

        conn pool-v4
            rightaddresspool=10.0.1.10-10.0.1.250
            auto=ignore

        conn rw
            also=pool-v4
            left=192.0.2.2
            right=%any
            mark=12/0xffffffff
            vti-interface=vti02
            vti-shared=yes

        conn rw6
            left=2001:db8::2
            right=%any
            rightaddresspool=2001:db8:100::/120
        """

    private func pools(_ file: String, _ text: String) throws -> [ConnAddressPool] {
        let (pools, errors) = try IPsecConfig(main: .init(file: file, text: text)).addressPools()
        XCTAssertEqual(errors, [])
        return pools
    }

    func testEachPoolLineIsReadOnceWithItsLine() throws {
        let found = try pools("east/ipsec.conf", east)
        XCTAssertEqual(found.map(\.connection), ["pool-v4", "rw6"], "rw takes pool-v4's line through also=: one pool, not two")
        XCTAssertEqual(found.map { "\($0.location)" }, ["east/ipsec.conf:5", "east/ipsec.conf:19"])
        XCTAssertEqual(found.first?.ranges.map { "\($0.lowerBound)-\($0.upperBound)" }, ["10.0.1.10-10.0.1.250"])
    }

    func testOverlappingPoolsOfTwoGatewaysNameBothFilesAndLines() throws {
        let west = """
            conn rw
                left=192.0.2.3
                right=%any
                rightaddresspool=10.0.1.200-10.0.2.50
                mark=13/0xffffffff
                vti-interface=vti03

            conn rw6
                rightaddresspool=2001:db8:200::/120
            """
        let findings = checkPoolsAcrossGateways(try pools("east/ipsec.conf", east), peer: try pools("west/ipsec.conf", west))
        XCTAssertEqual(findings.map(\.description), [
            "east/ipsec.conf:5: error: conn pool-v4's address pool 10.0.1.10-10.0.1.250 overlaps conn rw's 10.0.1.200-10.0.2.50 on the other gateway "
                + "(west/ipsec.conf:4): both would lease the same addresses, and both announce their routes; give each gateway its own pool",
        ])
    }

    func testOnlyOverlapsWithinOneFamilyCount() throws {
        let west = """
            conn rw
                rightaddresspool=10.0.2.10-10.0.2.250
            conn rw6
                rightaddresspool=10.0.1.0/24
                leftaddresspool=2001:db8:100::80/121
            """
        let findings = checkPoolsAcrossGateways(try pools("east/ipsec.conf", east), peer: try pools("west/ipsec.conf", west))
        XCTAssertEqual(findings.map(\.location?.line), [5, 19], "10.0.1.0/24 meets the IPv4 pool, the IPv6 pool meets leftaddresspool=; 10.0.2.x meets nothing")
        XCTAssertEqual(checkPoolsAcrossGateways(try pools("east/ipsec.conf", east), peer: []), [])
    }

    func testAnUnreadablePoolIsAnErrorAtItsLine() throws {
        let (pools, errors) = try IPsecConfig(main: .init(file: "west/ipsec.conf", text: "conn rw\n    rightaddresspool=10.0.1.9-10.0.1.1\n")).addressPools()
        XCTAssertEqual(pools, [])
        XCTAssertEqual(errors.map(\.description), [#"west/ipsec.conf:2: rightaddresspool="10.0.1.9-10.0.1.1" is neither FIRST-LAST nor a PREFIX/LENGTH"#])
    }
}
