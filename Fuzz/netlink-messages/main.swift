import CLibFuzzer
import Glibc
@_spi(Fuzzing) import Netlink

/// One netlink message as the kernel sends it (`nlmsghdr`, then the payload), read by every
/// decoder of the Netlink module: links, addresses, routes, rules, proxy neighbours, SAs,
/// policies, XFRM notifications and ACKs.
func fuzzNetlinkMessages(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    NetlinkFuzzing.decodeEveryWay(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

// libFuzzer reads its options and corpus directories from the arguments, then calls the function
// above for each input.
var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzNetlinkMessages))
