import XCTest
final class TestbedPlaceholder: XCTestCase { func testPlaceholder() {} }
