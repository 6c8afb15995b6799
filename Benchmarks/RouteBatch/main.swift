// Installs or removes N /32 routes through the Netlink module in batches, for Scripts/bench-routes.
import Glibc
// Usage: vtictl-bench-routes add|delete COUNT DEVICE
import Netlink

let arguments = CommandLine.arguments
guard arguments.count == 4, let count = Int(arguments[2]), ["add", "delete"].contains(arguments[1]) else {
    print("usage: vtictl-bench-routes add|delete COUNT DEVICE")
    exit(2)
}

do {
    let socket = try NetlinkSocket(.route)
    guard let device = try socket.link(named: arguments[3]) else {
        print("vtictl-bench-routes: no device \(arguments[3])")
        exit(1)
    }
    let routes = (0..<count).map { index in
        Route(destination: InetPrefix(InetAddress(ipv4: 0x0a40_0000 + UInt32(index)), length: 32)!,
              protocol: RouteProtocol(rawValue: 250), outputInterface: device.index)
    }
    let results = socket.changeRoutes(arguments[1] == "add" ? .add : .delete, routes)
    let failures = results.compactMap { $0 }
    if let first = failures.first {
        print("vtictl-bench-routes: \(failures.count) of \(count) failed, first: \(first)")
        exit(1)
    }
} catch {
    print("vtictl-bench-routes: \(error)")
    exit(1)
}
