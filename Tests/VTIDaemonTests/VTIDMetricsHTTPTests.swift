import ControlProtocol
import Foundation
import KernelTestSupport
import XCTest

/// vtid's `metrics_listen` as a Prometheus server meets it: a real vtid in a throwaway network
/// namespace, scraped over real TCP on loopback; the text checked by Prometheus's own promtool.
final class VTIDMetricsHTTPTests: XCTestCase {
    func testMetricsOverHTTPAreValidPrometheusTextAndOtherPathsAre404() throws {
        try inFreshNetworkNamespace(self) {
            let port = try freeTCPPort(AF_INET)
            let bed = try VTIDBed(extraTopLevel: "metrics_listen: 127.0.0.1:\(port)\n")
            let vtid = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 2)).status, 0)
            XCTAssertTrue(eventually(within: 10) { (try? httpGet(AF_INET, "127.0.0.1", port, "/metrics")) != nil }, vtid.log)
            let scrape = try httpGet(AF_INET, "127.0.0.1", port, "/metrics")
            XCTAssertEqual(scrape.status, 200, scrape.head)
            XCTAssertTrue(scrape.head.lowercased().contains("content-type: text/plain; version=0.0.4"), scrape.head)
            let body = scrape.body
            // Gauges print as floats (swift-prometheus), counters as integers.
            for line in [#"vtid_events_total{verb="up-client",result="applied"} 2"#, "vtid_clients_connected 2.0",
                         #"ipsec_up{tunnel="rw"} 1.0"#, #"ipsec_status{tunnel="rw"} 2.0"#, #"ipsec_in_bytes{tunnel="rw"} 0.0"#,
                         #"ipsec_out_packets{tunnel="rw"} 0.0"#, #"vtid_tunnel_clients_connected{tunnel="rw"} 2.0"#] {
                XCTAssertTrue(body.split(separator: "\n").contains(Substring(line)), "\(line) missing from:\n\(body)")
            }
            // The same text as `vtictl metrics` (the control socket), but for the apply histogram's
            // own scrape-to-scrape changes: none here, nothing happened in between.
            let viaSocket = runChild([product("vtictl"), "metrics", "--run-directory", bed.directory + "/run"]).output
            XCTAssertEqual(Set(viaSocket.split(separator: "\n")), Set(body.split(separator: "\n")))
            try checkWithPromtool(body)

            let other = try httpGet(AF_INET, "127.0.0.1", port, "/")
            XCTAssertEqual(other.status, 404)
            XCTAssertEqual(try httpGet(AF_INET, "127.0.0.1", port, "/metrics/../status").status, 404)
            XCTAssertEqual(try httpGet(AF_INET, "127.0.0.1", port, "/metrics", method: "POST").status, 405)
            XCTAssertEqual(try httpGet(AF_INET, "127.0.0.1", port, "/metrics?name[]=vtid_degraded").status, 200, "a query is ignored")
            // Two requests on one connection (HTTP/1.1 keep-alive), both answered.
            let socket = try connectTCP(AF_INET, "127.0.0.1", port)
            defer { close(socket) }
            let twice = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            XCTAssertEqual(twice.withCString { send(socket, $0, strlen($0), 0) }, twice.utf8.count)
            var answer: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while case let count = recv(socket, &buffer, buffer.count, 0), count > 0 { answer += buffer[..<count] }
            XCTAssertEqual(String(decoding: answer, as: UTF8.self).components(separatedBy: "HTTP/1.1 200 OK").count, 3, "two answers")
            XCTAssertTrue(vtid.log.contains("serving metrics on http://127.0.0.1:\(port)/metrics"), vtid.log)
            XCTAssertEqual(vtid.stop(), 0, "a scrape server stops with vtid:\n\(vtid.log)")
        }
    }

    func testIPv6AddressAndNothingListensWithoutTheSetting() throws {
        try inFreshNetworkNamespace(self) {
            let bed = try VTIDBed()
            var vtid = try bed.startVTID()
            XCTAssertEqual(try listeningTCPSockets(), [], "without metrics_listen vtid listens on no TCP port")
            XCTAssertEqual(vtid.stop(), 0)
            try ip("link", "del", "rwdev")  // the next bed makes its own

            let port = try freeTCPPort(AF_INET6)
            let ipv6 = try VTIDBed(extraTopLevel: "metrics_listen: \"[::1]:\(port)\"\n")
            vtid = try ipv6.startVTID()
            XCTAssertTrue(eventually(within: 10) { (try? httpGet(AF_INET6, "::1", port, "/metrics")) != nil }, vtid.log)
            XCTAssertEqual(try httpGet(AF_INET6, "::1", port, "/metrics").status, 200)
            XCTAssertEqual(try listeningTCPSockets(), ["[::1]:\(port)"])
        }
    }

    /// An address vtid cannot listen on (the port is taken) costs the metrics, not the supervisor:
    /// vtid starts, applies events and shows the problem; a reload that changes the address is
    /// refused (it binds only at start).
    func testAPortInUseIsAProblemNotAStop() throws {
        try inFreshNetworkNamespace(self) {
            let port = try freeTCPPort(AF_INET)
            let taken = try listenTCP(AF_INET, port)
            defer { close(taken) }
            let bed = try VTIDBed(extraTopLevel: "metrics_listen: 127.0.0.1:\(port)\n")
            let vtid = try bed.startVTID()
            XCTAssertEqual(bed.runHook(roadWarrior("up-client", client: 1)).status, 0)
            XCTAssertEqual(try bed.ourRoutes(), ["10.0.1.11"])
            XCTAssertTrue(eventually(within: 10) {
                (try? bed.client.fetch("status", as: StatusReply.self).problems.contains { $0.hasPrefix("cannot serve metrics on 127.0.0.1:\(port) (metrics_listen): ") }) == true
            }, "\((try? bed.client.fetch("status", as: StatusReply.self).problems) ?? [])\n\(vtid.log)")
            XCTAssertEqual(try bed.client.fetch("status", as: StatusReply.self).daemon.degraded, true)

            let yaml = try String(contentsOfFile: bed.configurationPath, encoding: .utf8)
            try yaml.replacingOccurrences(of: "metrics_listen: 127.0.0.1:\(port)", with: "metrics_listen: 127.0.0.1:\(port &+ 1)")
                .write(toFile: bed.configurationPath, atomically: true, encoding: .utf8)
            let reload = runChild([product("vtictl"), "reload", "--run-directory", bed.directory + "/run"])
            XCTAssertEqual(reload.status, 1)
            XCTAssertTrue(reload.output.contains("vtid.yaml:5: metrics_listen takes effect only at restart"), reload.output)
        }
    }

    /// Scrapers that connect and never finish their request hold connections (more than the 32
    /// vtid takes at once), not vtid: hook events and the control socket go on as before.
    func testStalledScrapersDoNotHoldUpEvents() throws {
        try inFreshNetworkNamespace(self) {
            let port = try freeTCPPort(AF_INET)
            let bed = try VTIDBed(extraTopLevel: "metrics_listen: 127.0.0.1:\(port)\n")
            _ = try bed.startVTID()
            XCTAssertTrue(eventually(within: 10) { (try? httpGet(AF_INET, "127.0.0.1", port, "/metrics")) != nil })
            let stalled = try (0..<40).map { _ in
                let socket = try connectTCP(AF_INET, "127.0.0.1", port)
                _ = "GET /metrics HTTP/1.1\r\nHost: x\r\n".withCString { send(socket, $0, strlen($0), 0) }
                return socket
            }
            defer { stalled.forEach { close($0) } }
            let start = ContinuousClock.now
            let result = bed.runHook(roadWarrior("up-client", client: 1))
            XCTAssertEqual(result.status, 0, result.output)
            XCTAssertLessThan(ContinuousClock.now - start, .seconds(2), "the event went through vtid as fast as ever")
            let events = try bed.client.fetch("events", as: EventsReply.self).events
            XCTAssertEqual(events.map(\.source), [.vtid], "vtid applied it; the hook did not have to fall back")
            XCTAssertEqual(try bed.ourRoutes(), ["10.0.1.11"])
        }
    }
}

/// promtool (Debian's prometheus package) checks the text as Prometheus parses it, and lints it
/// (help texts, counter names): exit 0 only when both are clean.
private func checkWithPromtool(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else {
        XCTFail("promtool is missing: apt-get install prometheus (Scripts/install-packages does)", file: file, line: line)
        return
    }
    let path = NSTemporaryDirectory() + "vtid-metrics-\(UUID().uuidString).prom"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let result = runChild(["/bin/sh", "-c", "/usr/bin/promtool check metrics < \(path)"])
    XCTAssertEqual(result.status, 0, "promtool check metrics:\n\(result.output)\n\(text)", file: file, line: line)
}

/// A port nothing listens on in this namespace now: the kernel's choice for a socket bound to port 0.
private func freeTCPPort(_ family: Int32) throws -> UInt16 {
    let socket = Glibc.socket(family, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw CommandError(message: "socket: errno \(errno)") }
    defer { close(socket) }
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let bound = withUnsafeMutablePointer(to: &storage) { pointer -> Int32 in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            address.pointee.sa_family = sa_family_t(family)
            return bind(socket, address, family == AF_INET ? socklen_t(MemoryLayout<sockaddr_in>.size) : socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
    }
    guard bound == 0 else { throw CommandError(message: "bind: errno \(errno)") }
    _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
    return withUnsafePointer(to: &storage) { pointer in
        family == AF_INET
            ? pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            : pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
    }
}

/// A socket listening on loopback at `port`, as another program holding the port would.
private func listenTCP(_ family: Int32, _ port: UInt16) throws -> Int32 {
    let socket = Glibc.socket(family, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw CommandError(message: "socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0, listen(socket, 1) == 0 else {
        let error = errno
        close(socket)
        throw CommandError(message: "listen on port \(port): errno \(error)")
    }
    return socket
}

/// A connected TCP socket to a literal address, with 10 s send and receive timeouts.
private func connectTCP(_ family: Int32, _ host: String, _ port: UInt16) throws -> Int32 {
    let socket = Glibc.socket(family, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw CommandError(message: "socket: errno \(errno)") }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let connected: Int32
    if family == AF_INET {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    } else {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        inet_pton(AF_INET6, host, &address.sin6_addr)
        connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
    }
    guard connected == 0 else {
        let error = errno
        close(socket)
        throw CommandError(message: "connect to \(host) port \(port): errno \(error)")
    }
    return socket
}

/// One HTTP/1.1 GET with `Connection: close`, read to the end: status, head and body (the body
/// as long as Content-Length says, which the test insists on).
private func httpGet(_ family: Int32, _ host: String, _ port: UInt16, _ path: String, method: String = "GET") throws -> (status: Int, head: String, body: String) {
    let socket = try connectTCP(family, host, port)
    defer { close(socket) }
    let request = "\(method) \(path) HTTP/1.1\r\nHost: \(family == AF_INET6 ? "[\(host)]" : host):\(port)\r\nConnection: close\r\n\r\n"
    guard request.withCString({ send(socket, $0, strlen($0), 0) }) == request.utf8.count else { throw CommandError(message: "send: errno \(errno)") }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = recv(socket, &buffer, buffer.count, 0)
        guard count >= 0 else { throw CommandError(message: "recv: errno \(errno)") }
        if count == 0 { break }
        bytes += buffer[..<count]
    }
    let text = String(decoding: bytes, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw CommandError(message: "no HTTP head in \(text)") }
    let head = String(text[..<split.lowerBound])
    let body = String(text[split.upperBound...])
    guard let status = head.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { throw CommandError(message: "no status in \(head)") }
    let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
        .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
    XCTAssertEqual(length, body.utf8.count, "Content-Length and the body agree: \(head)")
    return (status, head, body)
}

/// `ADDRESS:PORT` of every listening TCP socket in this network namespace (`/proc/net/tcp`, `tcp6`).
private func listeningTCPSockets() throws -> [String] {
    var found: [String] = []
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        for line in try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[3] == "0A" else { continue }  // TCP_LISTEN
            let local = fields[1].split(separator: ":")
            guard let port = UInt16(local[1], radix: 16) else { continue }
            found.append(v6 ? (local[0] == "00000000000000000000000001000000" ? "[::1]:\(port)" : "[\(local[0])]:\(port)") : "\(local[0]):\(port)")
        }
    }
    return found
}
