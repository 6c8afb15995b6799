import XCTest
@testable import Netlink
final class P: XCTestCase { func testX() {} }
