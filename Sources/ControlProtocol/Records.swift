// What vtid reports over the control socket. vtid encodes these with JSONLineEncoder and
// vtictl decodes them: the JSON keys are the documented, stable interface (README, "Control
// protocol"); add fields, never rename them.

/// One pool address and the client that holds (or last held) it.
public struct LeaseRecord: Codable, Sendable, Hashable {
    public var address: String
    public var connection: String
    /// Remote-chosen text, escaped (`\xNN` for anything unprintable), at most 256 bytes.
    public var peerID: String
    public var peerAddress: String
    /// Unix time, seconds.
    public var firstSeen: Int64
    public var lastSeen: Int64
    public var connected: Bool
    public var spiIn: UInt32?
    public var spiOut: UInt32?
    /// The SA's counters: read from the kernel while connected, pluto's final count after.
    public var inBytes: UInt64
    public var outBytes: UInt64

    public init(address: String, connection: String, peerID: String, peerAddress: String, firstSeen: Int64, lastSeen: Int64,
                connected: Bool, spiIn: UInt32? = nil, spiOut: UInt32? = nil, inBytes: UInt64 = 0, outBytes: UInt64 = 0) {
        self.address = address
        self.connection = connection
        self.peerID = peerID
        self.peerAddress = peerAddress
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.connected = connected
        self.spiIn = spiIn
        self.spiOut = spiOut
        self.inBytes = inBytes
        self.outBytes = outBytes
    }
}

/// One hook event and what became of it.
public struct EventRecord: Codable, Sendable, Hashable {
    public enum Source: String, Codable, Sendable {
        /// vtid applied it.
        case vtid
        /// vti-updown applied it itself because vtid did not answer; vtid read it from the spool.
        case hook
    }
    public enum Result: String, Codable, Sendable {
        case applied, failed, rejected, ignored
        /// Applied to the kernel, but vtid could not write its records (a full disk): shown as a problem.
        case unrecorded = "applied-not-recorded"
    }
    public var sequence: Int
    /// Unix time, milliseconds.
    public var time: Int64
    /// conn, peer, client, SPIs and verb: the same call from pluto has the same key.
    public var key: String
    public var verb: String
    public var connection: String
    public var source: Source
    public var result: Result
    public var lines: [String]
    public var error: String?
    /// Planning and applying, without waiting for the lock.
    public var microseconds: Int

    public init(sequence: Int, time: Int64, key: String, verb: String, connection: String, source: Source, result: Result,
                lines: [String], error: String?, microseconds: Int) {
        self.sequence = sequence
        self.time = time
        self.key = key
        self.verb = verb
        self.connection = connection
        self.source = source
        self.result = result
        self.lines = lines
        self.error = error
        self.microseconds = microseconds
    }
}

/// A route-based conn vtid knows from ipsec.conf.
public struct ConnectionRecord: Codable, Sendable, Hashable {
    public var name: String
    /// `file:line` of the conn in ipsec.conf.
    public var location: String
    public var markIn: String
    public var markOut: String
    public var device: String
    public var shared: Bool
    public var routing: Bool
    public var managed: Bool
    public var addressPool: String?
    /// What vtid last repaired on the conn's device, and the last error it met there (time first).
    public var lastRepair: String?
    public var lastError: String?
    /// The conn's IPsec SAs now (nil when vtid could not read them).
    public var traffic: ConnectionTraffic?
    /// The conn's device as the kernel has it: `up`, `down` or `missing`, and its MTU (nil when
    /// missing). vtid leaves them out; `vtictl status` fills them from the kernel's devices.
    public var deviceState: String?
    public var deviceMTU: UInt32?
    /// The conn's TCP MSS clamp (`mss_clamp` in vtid.yaml) and the values in force, e.g.
    /// `auto: 1406/1386` (IPv4/IPv6); nil when off.
    public var mssClamp: String?

    public init(name: String, location: String, markIn: String, markOut: String, device: String, shared: Bool, routing: Bool,
                managed: Bool, addressPool: String?, lastRepair: String? = nil, lastError: String? = nil, traffic: ConnectionTraffic? = nil) {
        self.traffic = traffic
        self.name = name
        self.location = location
        self.markIn = markIn
        self.markOut = markOut
        self.device = device
        self.shared = shared
        self.routing = routing
        self.managed = managed
        self.addressPool = addressPool
        self.lastRepair = lastRepair
        self.lastError = lastError
    }
}

/// A conn's IPsec SAs as the kernel counts them: those whose reqid a policy with the conn's mark
/// names. Counters restart at each rekey (a new SA); `since` is the oldest SA's installation.
/// Conns that share one device share its mark, and so show the same SAs: the device's traffic.
public struct ConnectionTraffic: Codable, Sendable, Hashable {
    /// Remote ends of the SAs: one for a site-to-site conn, each client's address on a shared one.
    public var peers: [String]
    public var associations: Int
    /// Unix time, seconds.
    public var since: Int64?
    public var inBytes: UInt64
    public var outBytes: UInt64
    public var inPackets: UInt64
    public var outPackets: UInt64

    public init(peers: [String], associations: Int, since: Int64?, inBytes: UInt64, outBytes: UInt64, inPackets: UInt64, outPackets: UInt64) {
        self.peers = peers
        self.associations = associations
        self.since = since
        self.inBytes = inBytes
        self.outBytes = outBytes
        self.inPackets = inPackets
        self.outPackets = outPackets
    }
}

/// The answer to `status`.
public struct StatusReply: Codable, Sendable, Hashable {
    public var version: Int
    public var ok: Bool
    public var daemon: DaemonRecord
    public var connections: [ConnectionRecord]
    public var leases: [LeaseRecord]
    /// Errors vtid knows of now, one sentence each: objects it could not repair, a failed reload.
    public var problems: [String]
    /// L2TP/IPsec clients: pppd's ppp links on this host, each with its IPsec SA (nil from a vtid
    /// older than the field).
    public var l2tpClients: [L2TPClientRecord]?

    public init(daemon: DaemonRecord, connections: [ConnectionRecord], leases: [LeaseRecord], problems: [String] = [],
                l2tpClients: [L2TPClientRecord]? = nil) {
        version = ControlProtocol.version
        ok = true
        self.daemon = daemon
        self.connections = connections
        self.leases = leases
        self.problems = problems
        self.l2tpClients = l2tpClients
    }
}

/// One L2TP/IPsec client as the kernel shows it: the ppp link pppd made for it (vtid only reads
/// it: pppd owns the link and its routes), the address the client got over PPP, and the IPsec
/// transport-mode SAs of its public address that carry the L2TP tunnel.
public struct L2TPClientRecord: Codable, Sendable, Hashable {
    /// The ppp link, e.g. `ppp0`.
    public var device: String
    /// `up` or `down`.
    public var state: String
    /// The client's address inside the tunnel (the link's peer address); nil before IPCP is done.
    public var address: String?
    /// This host's end of the link.
    public var localAddress: String?
    /// The client's public address, from its SAs; nil when it cannot be told (see `peerNote`).
    public var peerAddress: String?
    /// Why `peerAddress` is missing, one sentence.
    public var peerNote: String?
    /// The transport-mode SAs with the public address, and their counters.
    public var associations: Int
    /// Unix time, seconds: the oldest of those SAs.
    public var since: Int64?
    public var inBytes: UInt64
    public var outBytes: UInt64

    public init(device: String, state: String, address: String?, localAddress: String?, peerAddress: String?, peerNote: String? = nil,
                associations: Int = 0, since: Int64? = nil, inBytes: UInt64 = 0, outBytes: UInt64 = 0) {
        self.device = device
        self.state = state
        self.address = address
        self.localAddress = localAddress
        self.peerAddress = peerAddress
        self.peerNote = peerNote
        self.associations = associations
        self.since = since
        self.inBytes = inBytes
        self.outBytes = outBytes
    }
}

public struct DaemonRecord: Codable, Sendable, Hashable {
    public var version: String
    public var pid: Int32
    /// Unix time, seconds.
    public var started: Int64
    public var configurationFile: String
    public var ipsecConf: String
    /// The last reload that failed, and why; nil once one succeeds.
    public var reloadError: String?
    public var eventsApplied: Int
    public var eventsFailed: Int
    /// Events applied whose records vtid could not write (counted in `eventsApplied` too).
    public var eventsNotRecorded: Int?
    /// vtid has open problems of its own (listed in `problems`) and works around them.
    public var degraded: Bool?

    public init(version: String, pid: Int32, started: Int64, configurationFile: String, ipsecConf: String, reloadError: String?,
                eventsApplied: Int, eventsFailed: Int) {
        self.version = version
        self.pid = pid
        self.started = started
        self.configurationFile = configurationFile
        self.ipsecConf = ipsecConf
        self.reloadError = reloadError
        self.eventsApplied = eventsApplied
        self.eventsFailed = eventsFailed
    }
}

public struct LeasesReply: Codable, Sendable, Hashable {
    public var version = ControlProtocol.version
    public var ok = true
    public var leases: [LeaseRecord]
    /// The L2TP/IPsec clients (`StatusReply.l2tpClients`): pppd, not pluto's pool, gave their addresses.
    public var l2tpClients: [L2TPClientRecord]?
    public init(leases: [LeaseRecord], l2tpClients: [L2TPClientRecord]? = nil) {
        self.leases = leases
        self.l2tpClients = l2tpClients
    }
}

public struct EventsReply: Codable, Sendable, Hashable {
    public var version = ControlProtocol.version
    public var ok = true
    public var events: [EventRecord]
    public init(events: [EventRecord]) { self.events = events }
}

/// A route vtid keeps for an up tunnel (`vtictl routes`): what the hook's plan installed, owned by
/// the conn and peer client it serves.
public struct RouteRecord: Codable, Sendable, Hashable {
    public var destination: String
    public var device: String
    /// 254 is main.
    public var table: UInt32
    public var gateway: String?
    public var source: String?
    public var metric: UInt32?
    public var connection: String
    /// The peer's client subnet (a road warrior's /32) whose tunnel the route serves.
    public var peerClient: String
    /// The tunnel's IPsec reqid, by which vtid finds its SAs; nil until an SA was seen.
    public var reqid: UInt32?

    public init(destination: String, device: String, table: UInt32, gateway: String?, source: String?, metric: UInt32?,
                connection: String, peerClient: String, reqid: UInt32?) {
        self.destination = destination
        self.device = device
        self.table = table
        self.gateway = gateway
        self.source = source
        self.metric = metric
        self.connection = connection
        self.peerClient = peerClient
        self.reqid = reqid
    }
}

public struct RoutesReply: Codable, Sendable, Hashable {
    public var version = ControlProtocol.version
    public var ok = true
    /// The route protocol number vtid tags its routes with (`routes.protocol`).
    public var routeProtocol: UInt8
    public var routes: [RouteRecord]
    public init(routeProtocol: UInt8, routes: [RouteRecord]) {
        self.routeProtocol = routeProtocol
        self.routes = routes
    }
}
