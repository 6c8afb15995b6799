import DHCP
import Foundation
import VTIModel
import XCTest

/// The responder's decisions: an answer only for a well-formed INFORM from the address it names,
/// within the client's rate; nothing, and a typed reason, for everything else.
final class InformResponderTests: XCTestCase {
    let client = IPv4Address("10.0.1.11")!
    let server = IPv4Address("10.3.0.1")!
    let parameters = InformParameters(routes: [IPv4Network(address: IPv4Address("10.3.0.0")!, length: 24)!])

    func inform() throws -> [UInt8] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/dhcpcd-inform.bin", withExtension: nil))
        return Array(try Data(contentsOf: url))
    }

    func testAnswersAnInformFromItsOwnAddress() throws {
        var responder = InformResponder(parameters: parameters)
        let (outcome, reply) = responder.handle(try inform(), from: client, serverIdentifier: server, now: .now)
        XCTAssertEqual(outcome, .answered)
        let ack = try DHCPPacket(parsing: try XCTUnwrap(reply))
        XCTAssertEqual(ack.option(DHCPOptionCode.serverIdentifier), server.bytes)
        XCTAssertEqual(try decodeClasslessRoutes(ack.option(121) ?? []).map(\.description), ["10.3.0.0/24 via 10.3.0.1"])
    }

    func testNoAnswerForWhatIsNotAnInformFromItsAddress() throws {
        var responder = InformResponder(parameters: parameters)
        var bytes = try inform()
        XCTAssertEqual(responder.handle(bytes, from: IPv4Address("10.0.1.12")!, serverIdentifier: server, now: .now).outcome, .addressMismatch)
        bytes[242] = DHCPMessageType.request.rawValue
        XCTAssertEqual(responder.handle(bytes, from: client, serverIdentifier: server, now: .now).outcome, .ignored(.request))
        bytes[242] = DHCPMessageType.inform.rawValue
        bytes[0] = DHCPPacket.bootReply
        XCTAssertEqual(responder.handle(bytes, from: client, serverIdentifier: server, now: .now).outcome, .ignored(.inform), "a reply, not a request")
        bytes[0] = DHCPPacket.bootRequest
        bytes.replaceSubrange(12..<16, with: [0, 0, 0, 0])
        XCTAssertEqual(responder.handle(bytes, from: client, serverIdentifier: server, now: .now).outcome, .noClientAddress)
        XCTAssertEqual(responder.handle(Array(bytes.prefix(100)), from: client, serverIdentifier: server, now: .now).outcome,
                       .malformed(.truncated(length: 100)))
    }

    /// A flood from one client: its burst is answered, the rest not until its bucket refills;
    /// another client is not held up by it.
    func testAFloodIsRateLimitedPerClient() throws {
        var responder = InformResponder(parameters: parameters, limiter: ClientRateLimiter(burst: 4, interval: .seconds(2)))
        let bytes = try inform()
        let start = ContinuousClock.now
        let outcomes = (0..<100).map { index in
            responder.handle(bytes, from: client, serverIdentifier: server, now: start.advanced(by: .milliseconds(index))).outcome
        }
        XCTAssertEqual(outcomes.filter { $0 == .answered }.count, 4)
        XCTAssertEqual(outcomes.filter { $0 == .rateLimited }.count, 96)
        XCTAssertEqual(outcomes.prefix(4), [.answered, .answered, .answered, .answered])
        var other = bytes
        other.replaceSubrange(12..<16, with: [10, 0, 1, 12])
        XCTAssertEqual(responder.handle(other, from: IPv4Address("10.0.1.12")!, serverIdentifier: server, now: start.advanced(by: .milliseconds(100))).outcome,
                       .answered)
        // Two seconds on, one more token; four seconds of quiet later, and the burst again.
        XCTAssertEqual(responder.handle(bytes, from: client, serverIdentifier: server, now: start.advanced(by: .milliseconds(2100))).outcome, .answered)
        XCTAssertEqual(responder.handle(bytes, from: client, serverIdentifier: server, now: start.advanced(by: .milliseconds(2200))).outcome, .rateLimited)
        let later = start.advanced(by: .seconds(20))
        XCTAssertEqual((0..<5).map { _ in responder.handle(bytes, from: client, serverIdentifier: server, now: later).outcome },
                       [.answered, .answered, .answered, .answered, .rateLimited])
    }

    func testTheClientTableIsBounded() {
        var limiter = ClientRateLimiter(burst: 1, interval: .seconds(10), capacity: 2)
        let now = ContinuousClock.now
        XCTAssertTrue(limiter.allow(IPv4Address(rawValue: 1), now: now))
        XCTAssertTrue(limiter.allow(IPv4Address(rawValue: 2), now: now))
        XCTAssertFalse(limiter.allow(IPv4Address(rawValue: 3), now: now), "every entry busy: a newcomer waits")
        XCTAssertEqual(limiter.trackedClients, 2)
        // Once the first two are full again they are forgotten, and the newcomer gets in.
        XCTAssertTrue(limiter.allow(IPv4Address(rawValue: 3), now: now.advanced(by: .seconds(11))))
        XCTAssertEqual(limiter.trackedClients, 1)
    }

    /// Fuzz-style: the captured INFORM cut at every length, every byte set to 0x00, 0xff and its
    /// complement, option lengths grown past the datagram, and 20,000 seeded random mutations.
    /// None traps; every one that does not parse gets no answer; an answer goes only to an INFORM
    /// that parses, from the address it names.
    func testMalformedTruncatedAndOverlongInputsGetNoAnswer() throws {
        let good = try inform()
        var inputs: [[UInt8]] = (0..<good.count).map { Array(good.prefix($0)) }
        for index in good.indices {
            for value: UInt8 in [0x00, 0xff, ~good[index]] where value != good[index] {
                var bytes = good
                bytes[index] = value
                inputs.append(bytes)
            }
        }
        // Each option's length byte (options start at 240) grown by 1, to 255.
        var index = 240
        while index + 1 < good.count, good[index] != 255 {
            for grown in [Int(good[index + 1]) + 1, 255] where grown <= 255 {
                var bytes = good
                bytes[index + 1] = UInt8(grown)
                inputs.append(bytes)
            }
            index += 2 + Int(good[index + 1])
        }
        inputs.append(good + [UInt8](repeating: 0, count: 2000))
        var random = SplitMix64(seed: 0x5eed_d4c9)
        for _ in 0..<20_000 {
            var bytes = good
            for _ in 0...(random.next() % 6) {
                switch random.next() % 4 {
                case 0: bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count + 1))))
                case 2: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: Int(random.next() % UInt64(bytes.count + 1)))
                default: if !bytes.isEmpty { bytes.remove(at: Int(random.next() % UInt64(bytes.count))) }
                }
                if bytes.isEmpty { break }
            }
            inputs.append(bytes)
        }
        var malformed = 0
        var answered = 0
        for bytes in inputs {
            var responder = InformResponder(parameters: parameters)
            let parsed = try? DHCPPacket(parsing: bytes)
            let (outcome, reply) = responder.handle(bytes, from: client, serverIdentifier: server, now: .now)
            if parsed == nil {
                malformed += 1
                XCTAssertNil(reply)
                guard case .malformed = outcome else { return XCTFail("\(outcome) for bytes that do not parse") }
            }
            if let reply {
                answered += 1
                XCTAssertEqual(outcome, .answered)
                XCTAssertEqual(parsed?.messageType, .inform)
                XCTAssertEqual(parsed?.ciaddr, client)
                XCTAssertEqual(try DHCPPacket(parsing: reply).xid, parsed?.xid)
            }
        }
        // Every cut before the END option is malformed; the checks above ran on both kinds.
        let end = good.lastIndex(of: 255)!
        for length in 0..<end {
            var responder = InformResponder(parameters: parameters)
            guard case .malformed = responder.handle(Array(good.prefix(length)), from: client, serverIdentifier: server, now: .now).outcome
            else { return XCTFail("a cut at \(length) bytes was not malformed") }
        }
        XCTAssertGreaterThan(malformed, 10_000)
        XCTAssertGreaterThan(answered, 100)
    }
}

/// A small seeded generator (SplitMix64): the same inputs on every run.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
