import CLibFuzzer
import DHCP
import Glibc
import VTIModel

/// One UDP payload on a tunnel device's DHCP socket, as vtid's responder takes it: parsed, and
/// when it is an INFORM from the address it names, answered; the answer is parsed again. Whatever
/// the bytes, no trap; an answer only for a well-formed INFORM, and one that reads back as a
/// DHCPACK to the same client with the routes it was given.
let parameters = InformParameters(
    routes: [IPv4Network(address: IPv4Address("10.3.0.0")!, length: 24)!, IPv4Network(address: IPv4Address("0.0.0.0")!, length: 0)!],
    dnsServers: [IPv4Address("10.3.0.53")!], domainName: "corp.example", searchDomains: ["corp.example", "example.com"])
let server = IPv4Address("10.3.0.1")!

func fuzzDHCPPacket(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let request = try? DHCPPacket(parsing: bytes)
    // The source the kernel reports: the INFORM's own ciaddr, so that well-formed INFORMs get
    // answers and the answer path is fuzzed too.
    let source = request?.ciaddr ?? IPv4Address(rawValue: 0)
    var responder = InformResponder(parameters: parameters)
    let (outcome, reply) = responder.handle(bytes, from: source, serverIdentifier: server, now: .now)
    guard let reply else {
        if outcome == .answered { fatalError("answered without a reply") }
        return 0
    }
    guard let request, request.messageType == .inform, request.op == DHCPPacket.bootRequest else { fatalError("answered something that is not an INFORM") }
    guard let ack = try? DHCPPacket(parsing: reply), ack.messageType == .ack, ack.xid == request.xid, ack.ciaddr == request.ciaddr,
          ack.option(DHCPOptionCode.classlessStaticRoutes).flatMap({ try? decodeClasslessRoutes($0) })?.count == 2
    else { fatalError("an answer that does not read back") }
    return 0
}

// libFuzzer reads its options and corpus directories from the arguments, then calls the function
// above for each input.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzDHCPPacket))
