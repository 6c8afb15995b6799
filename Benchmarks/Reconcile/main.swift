// Scripts/bench-reconcile: vtid's reconcile pass over COUNT routes that are already right, in the
// network namespace the script made (with a veth "rwdev"). Prints one line per round:
// "first <µs> <changes>" for the pass that installs them, then "steady <µs> <changes>".
import Foundation
import Logging
import VTIDaemon
import VTIModel

let arguments = CommandLine.arguments
// Scripts/bench-status: `leases COUNT STATE_DIRECTORY` fills a lease table with COUNT connected
// clients and exits.
if arguments.count == 4, arguments[1] == "leases", let count = Int(arguments[2]) {
    let store = try StateStore(path: arguments[3] + "/leases.sqlite")
    try store.batch { batch in
        for index in 0..<count {
            let address = IPAddress.v4(IPv4Address(rawValue: 0x0a40_0001 + UInt32(index)))
            try batch.connected(address: "\(address)", connection: "rw", peerID: "CN=client\(index).example.com",
                                peerAddress: "198.18.\(index >> 8 & 255).\(index & 255)", spiIn: 0x1000_0000 + UInt32(index),
                                spiOut: 0x2000_0000 + UInt32(index), at: 1_795_400_000 + Int64(index))
        }
    }
    exit(0)
}
guard arguments.count == 4, let count = Int(arguments[1]), let rounds = Int(arguments[2]) else {
    FileHandle.standardError.write(Data("usage: vtictl-bench-reconcile COUNT ROUNDS WORKDIR | leases COUNT STATE_DIRECTORY\n".utf8))
    exit(2)
}
let work = arguments[3]
try """
    conn rw
        left=192.0.2.2
        right=%any
        rightaddresspool=10.64.0.1-10.127.255.254
        mark=12/0xffffffff
        vti-interface=vti02
        vti-routing=yes
        vti-shared=yes
    """.write(toFile: work + "/ipsec.conf", atomically: true, encoding: .utf8)
try """
    ipsec_conf: \(work)/ipsec.conf
    run_directory: \(work)/run
    state_directory: \(work)/state
    conns:
      rw:
        existing_device: rwdev
    """.write(toFile: work + "/vtid.yaml", atomically: true, encoding: .utf8)

// The records a burst of up-client events leaves: one /32 per client.
try FileManager.default.createDirectory(atPath: work + "/state", withIntermediateDirectories: true)
let store = try StateStore(path: work + "/state/leases.sqlite")
try store.batch { batch in
    for index in 0..<count {
        let value = 0x0a40_0001 + UInt32(index)
        let address = IPAddress.v4(IPv4Address(rawValue: value))
        let prefix = IPPrefix(host: address)
        try batch.save(OwnedRoute(connection: "rw", peerClient: prefix,
                                  route: PlannedRoute(destination: prefix, device: InterfaceName("rwdev")!, routeProtocol: 157),
                                  reqid: 16400 + 4 * UInt32(index)))
    }
}

var logger = Logger(label: "bench")
logger.logLevel = .critical
let supervisor = try Supervisor(configurationFile: work + "/vtid.yaml", requireFile: true, logger: logger)
func timed(_ label: String) {
    let start = ContinuousClock.now
    let lines = supervisor.reconcile(reason: "benchmark").filter { !$0.hasPrefix("note") }
    let elapsed = ContinuousClock.now - start
    let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
    print("\(label) \(micros) \(lines.count)")
}
timed("first")
for _ in 0..<rounds { timed("steady") }
