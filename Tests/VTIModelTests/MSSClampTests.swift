import VTIModel
import XCTest

/// `mss_clamp`'s values: off, auto (from the device's MTU) or a number (the IPv4 MSS).
final class MSSClampTests: XCTestCase {
    func testAutoFollowsTheDeviceMTU() {
        XCTAssertEqual(MSSClampSetting.auto.clamp(deviceMTU: 1446), MSSClamp(ipv4: 1406, ipv6: 1386))
        XCTAssertEqual(MSSClampSetting.auto.clamp(deviceMTU: 1500), MSSClamp(ipv4: 1460, ipv6: 1440))
        XCTAssertEqual(MSSClampSetting.auto.clamp(deviceMTU: 1280), MSSClamp(ipv4: 1240, ipv6: 1220))
        XCTAssertNil(MSSClampSetting.auto.clamp(deviceMTU: nil), "no device, no clamp")
        XCTAssertNil(MSSClampSetting.auto.clamp(deviceMTU: 575), "below IPv4's minimum MTU")
        XCTAssertEqual(MSSClampSetting.auto.clamp(deviceMTU: 576), MSSClamp(ipv4: 536, ipv6: 516))
    }

    func testOffAndFixed() {
        XCTAssertNil(MSSClampSetting.off.clamp(deviceMTU: 1446))
        XCTAssertEqual(MSSClampSetting.fixed(1360).clamp(deviceMTU: 1446), MSSClamp(ipv4: 1360, ipv6: 1340))
        XCTAssertEqual(MSSClampSetting.fixed(1360).clamp(deviceMTU: nil), MSSClamp(ipv4: 1360, ipv6: 1340))
        XCTAssertEqual(MSSClamp(ipv4: 1406, ipv6: 1386).description, "1406/1386")
    }

    func testParsing() {
        XCTAssertEqual(MSSClampSetting("off"), .off)
        XCTAssertEqual(MSSClampSetting("auto"), .auto)
        XCTAssertEqual(MSSClampSetting("1360"), .fixed(1360))
        XCTAssertEqual(MSSClampSetting("536"), .fixed(536))
        XCTAssertEqual(MSSClampSetting("65495"), .fixed(65495))
        XCTAssertNil(MSSClampSetting("535"))
        XCTAssertNil(MSSClampSetting("65496"))
        XCTAssertNil(MSSClampSetting("yes"))
        XCTAssertNil(MSSClampSetting("-1"))
        XCTAssertEqual(MSSClampSetting.fixed(1360).description, "1360")
        XCTAssertEqual(MSSClampSetting.auto.description, "auto")
    }
}
