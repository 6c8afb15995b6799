import ControlProtocol
import Foundation
import GRDB
import VTIModel

/// What vtid must remember across restarts and crashes, in SQLite:
/// - the address-pool lease table: a pool address and the client that holds (or last held) it, one
///   row per address; a new client taking an address starts its first-seen time again;
/// - the devices vtid manages, as the hook sets them up, so that it re-creates a deleted one the
///   same way and deletes only devices it owns;
/// - the routes each up tunnel should have, with the tunnel's reqid, so that a route deleted from
///   outside comes back and a tunnel whose SAs vanished loses its routes.
public final class StateStore: Sendable {
    private let database: DatabaseQueue

    /// Opens (or creates) the store; `path` nil keeps it in memory, for tests.
    public init(path: String?) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        if let path {
            // WAL with synchronous=NORMAL: a commit survives a crash of vtid (the kernel has the
            // write); only a power loss may drop the last ones, which the next reconcile re-learns.
            configuration.journalMode = .wal
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
            database = try DatabaseQueue(path: path, configuration: configuration)
        } else {
            database = try DatabaseQueue(configuration: configuration)
        }
        var migrator = DatabaseMigrator()
        migrator.registerMigration("leases-v1") { db in
            try db.create(table: "lease") { table in
                table.column("address", .text).primaryKey()
                table.column("connection", .text).notNull()
                table.column("peerID", .text).notNull()
                table.column("peerAddress", .text).notNull()
                table.column("firstSeen", .integer).notNull()
                table.column("lastSeen", .integer).notNull()
                table.column("connected", .boolean).notNull()
                table.column("spiIn", .integer)
                table.column("spiOut", .integer)
                table.column("inBytes", .integer).notNull().defaults(to: 0)
                table.column("outBytes", .integer).notNull().defaults(to: 0)
            }
        }
        migrator.registerMigration("devices-and-routes-v1") { db in
            try db.create(table: "device") { table in
                table.column("name", .text).primaryKey()
                table.column("connection", .text).notNull()
                table.column("local", .text).notNull()
                table.column("remote", .text).notNull()
                table.column("inputKey", .integer).notNull()
                table.column("outputKey", .integer).notNull()
                table.column("routing", .boolean).notNull()
                table.column("shared", .boolean).notNull()
                table.column("clientFamily", .integer).notNull()
                table.column("fixedMTU", .integer)
                table.column("addresses", .text).notNull()
            }
            try db.create(table: "route") { table in
                table.column("destination", .text).notNull()
                table.column("tableNumber", .integer).notNull()
                table.column("connection", .text).notNull()
                table.column("peerClient", .text).notNull()
                table.column("device", .text).notNull()
                table.column("gateway", .text)
                table.column("source", .text)
                table.column("metric", .integer)
                table.column("protocol", .integer).notNull()
                table.column("reqid", .integer)
                table.primaryKey(["destination", "tableNumber"])
            }
        }
        migrator.registerMigration("ended-routes-v1") { db in
            // Routes whose tunnel vtid knows to have ended (a down or unroute it applied or read from
            // the spool): the only routes without a record that a reconcile may remove.
            try db.create(table: "ended") { table in
                table.column("destination", .text).notNull()
                table.column("tableNumber", .integer).notNull()
                table.column("connection", .text).notNull()
                table.column("peerClient", .text).notNull()
                table.column("device", .text).notNull()
                table.column("protocol", .integer).notNull()
                table.column("endedAt", .integer).notNull()
                table.primaryKey(["destination", "tableNumber"])
            }
        }
        migrator.registerMigration("xfrm-interfaces-v1") { db in
            // An XFRM interface's if_id and uplink; NULL for a VTI (whose keys are inputKey/outputKey).
            try db.alter(table: "device") { table in
                table.add(column: "interfaceID", .integer)
                table.add(column: "underlying", .text)
            }
        }
        try migrator.migrate(database)
    }

    /// Opens the store at `path` for vtid. A file SQLite finds damaged is moved aside (kept for
    /// whoever wants to look at it) and a new one started: vtid relearns live tunnels from the
    /// kernel, and never removes a route for lack of a record, so an empty store cuts nobody off.
    /// If no file can be opened at all, the store lives in memory. Either way the returned problem
    /// says what happened, for `vtictl status`.
    public static func open(path: String) throws -> (store: StateStore, problem: String?) {
        do {
            let store = try StateStore(path: path)
            try store.checkIntegrity()
            return (store, nil)
        } catch {
            let aside = path + ".damaged-\(Int64(time(nil)))"
            let moved = rename(path, aside) == 0
            for suffix in ["-wal", "-shm"] { _ = rename(path + suffix, aside + suffix) }
            if moved, let fresh = try? StateStore(path: path) {
                return (fresh, "the state store \(path) could not be used (\(error)); it was moved to \(aside) and a new one started: live tunnels are learned from the kernel again")
            }
            // Cannot even start a new file (a full or read-only file system): keep state in memory.
            let memory = try StateStore(path: nil)
            return (memory, "the state store \(path) could not be used (\(error))\(moved ? "; moved to \(aside)" : ""); keeping state in memory until vtid restarts: leases and records made now are lost at the next restart")
        }
    }

    /// Reads every page (SQLite's quick_check): damaged pages are found now, not by a write later.
    func checkIntegrity() throws {
        let result = try database.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
        guard result == ["ok"] else {
            throw StoreIntegrityError(findings: result.prefix(3).joined(separator: "; "))
        }
    }

    /// Several changes in one transaction: a burst of events costs one commit.
    public func batch(_ body: (Batch) throws -> Void) throws {
        try database.write { db in try body(Batch(db: db)) }
    }

    public func connected(address: String, connection: String, peerID: String, peerAddress: String, spiIn: UInt32?, spiOut: UInt32?, at time: Int64) throws {
        try batch { try $0.connected(address: address, connection: connection, peerID: peerID, peerAddress: peerAddress, spiIn: spiIn, spiOut: spiOut, at: time) }
    }

    public func disconnected(address: String, connection: String, inBytes: UInt64?, outBytes: UInt64?, at time: Int64) throws {
        try batch { try $0.disconnected(address: address, connection: connection, inBytes: inBytes, outBytes: outBytes, at: time) }
    }

    /// The changes one transaction may make. Cached statements: this runs for every event.
    public struct Batch {
        let db: Database

        /// A client came up with this address. The same client again keeps its first-seen time and
        /// counters; a different client on the address starts a new lease.
        public func connected(address: String, connection: String, peerID: String, peerAddress: String, spiIn: UInt32?, spiOut: UInt32?, at time: Int64) throws {
            try db.cachedStatement(sql: """
                INSERT INTO lease (address, connection, peerID, peerAddress, firstSeen, lastSeen, connected, spiIn, spiOut, inBytes, outBytes)
                VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, 0, 0)
                ON CONFLICT(address) DO UPDATE SET
                    firstSeen = CASE WHEN lease.peerID = excluded.peerID AND lease.connection = excluded.connection
                                     THEN lease.firstSeen ELSE excluded.firstSeen END,
                    inBytes = CASE WHEN lease.peerID = excluded.peerID AND lease.connection = excluded.connection
                                   THEN lease.inBytes ELSE 0 END,
                    outBytes = CASE WHEN lease.peerID = excluded.peerID AND lease.connection = excluded.connection
                                    THEN lease.outBytes ELSE 0 END,
                    connection = excluded.connection, peerID = excluded.peerID, peerAddress = excluded.peerAddress,
                    lastSeen = excluded.lastSeen, connected = 1, spiIn = excluded.spiIn, spiOut = excluded.spiOut
                """).execute(arguments: [address, connection, peerID, peerAddress, time, time, spiIn.map { Int64($0) }, spiOut.map { Int64($0) }])
        }

        public func save(_ device: OwnedDevice) throws {
            let setup = device.setup
            let mtu: Int? = if case .fixed(let value) = setup.mtu { value } else { nil }
            var keys: (input: Int64, output: Int64) = (0, 0)
            var xfrm: (interfaceID: Int64?, underlying: String?) = (nil, nil)
            switch setup.device {
            case .vti(let spec): keys = (Int64(spec.inputKey), Int64(spec.outputKey))
            case .xfrmInterface(let spec): xfrm = (Int64(spec.interfaceID), spec.underlying?.rawValue)
            }
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO device (name, connection, local, remote, inputKey, outputKey, routing, shared, clientFamily, fixedMTU, addresses,
                                               interfaceID, underlying)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    setup.device.name.rawValue, device.connection, "\(setup.device.local)", "\(setup.device.remote)", keys.input,
                    keys.output, setup.routing, setup.shared, setup.clientFamily == .ipv4 ? 4 : 6, mtu,
                    setup.addresses.map { "\($0.device) \($0.prefix)" }.joined(separator: ","), xfrm.interfaceID, xfrm.underlying,
                ])
        }

        public func removeDevice(named name: String) throws {
            try db.cachedStatement(sql: "DELETE FROM device WHERE name = ?").execute(arguments: [name])
        }

        public func save(_ owned: OwnedRoute) throws {
            let route = owned.route
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO route (destination, tableNumber, connection, peerClient, device, gateway, source, metric, protocol, reqid)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    "\(route.destination)", Int64(route.table), owned.connection, "\(owned.peerClient)", route.device.rawValue,
                    route.gateway.map { "\($0)" }, route.preferredSource.map { "\($0)" }, route.metric.map { Int64($0) },
                    Int64(route.routeProtocol.rawValue), owned.reqid.map { Int64($0) },
                ])
        }

        /// Forgets a tunnel's routes: the client went down, or its SAs vanished.
        public func removeRoutes(connection: String, peerClient: String) throws {
            try db.cachedStatement(sql: "DELETE FROM route WHERE connection = ? AND peerClient = ?").execute(arguments: [connection, peerClient])
        }

        /// Remembers that this route's tunnel ended: a reconcile may remove it if it is still in
        /// the kernel and no live tunnel has it.
        public func ended(_ route: PlannedRoute, connection: String, peerClient: String, at time: Int64) throws {
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO ended (destination, tableNumber, connection, peerClient, device, protocol, endedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: ["\(route.destination)", Int64(route.table), connection, peerClient, route.device.rawValue,
                                         Int64(route.routeProtocol.rawValue), time])
        }

        /// A route is wanted again (a new up) or gone from the kernel: its tunnel's end no longer matters.
        public func forgetEnded(destination: String, table: UInt32) throws {
            try db.cachedStatement(sql: "DELETE FROM ended WHERE destination = ? AND tableNumber = ?").execute(arguments: [destination, Int64(table)])
        }

        /// The client holding `address` on `connection` went down; pluto's final byte counts if it sent them.
        public func disconnected(address: String, connection: String, inBytes: UInt64?, outBytes: UInt64?, at time: Int64) throws {
            try db.cachedStatement(sql: """
                UPDATE lease SET connected = 0, lastSeen = ?, inBytes = coalesce(?, inBytes), outBytes = coalesce(?, outBytes)
                WHERE address = ? AND connection = ?
                """).execute(arguments: [time, inBytes.map { Int64(clamping: $0) }, outBytes.map { Int64(clamping: $0) }, address, connection])
        }
    }

    public func all() throws -> [LeaseRecord] {
        // Rows by column index, not Codable: `vtictl status` with thousands of clients waits on this.
        try database.read { db in
            let rows = try Row.fetchCursor(db, sql: """
                SELECT address, connection, peerID, peerAddress, firstSeen, lastSeen, connected, spiIn, spiOut, inBytes, outBytes
                FROM lease ORDER BY address
                """)
            var leases: [LeaseRecord] = []
            while let row = try rows.next() {
                leases.append(LeaseRecord(
                    address: row[0], connection: row[1], peerID: row[2], peerAddress: row[3], firstSeen: row[4], lastSeen: row[5],
                    connected: row[6], spiIn: (row[7] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
                    spiOut: (row[8] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
                    inBytes: UInt64(bitPattern: row[9] as Int64), outBytes: UInt64(bitPattern: row[10] as Int64)))
            }
            return leases
        }
    }

    /// The devices vtid manages, and the rows it could not read (never silently dropped: the
    /// caller shows them as a problem).
    public func devices() throws -> (records: [OwnedDevice], unreadable: [String]) {
        try rows("SELECT * FROM device ORDER BY name", what: "device", OwnedDevice.init(row:))
    }

    /// Every row of a query as a record, and the rows that are not one (never dropped silently).
    private func rows<Record>(_ sql: String, what: String, _ record: (Row) -> Record?) throws -> (records: [Record], unreadable: [String]) {
        try database.read { db in
            var unreadable: [String] = []
            let records = try Row.fetchAll(db, sql: sql).compactMap { row in
                record(row) ?? { unreadable.append("\(what) row \(row)"); return nil }()
            }
            return (records, unreadable)
        }
    }

    /// Routes whose tunnel ended, by identity.
    public func endedRoutes() throws -> [RouteIdentity: PlannedRoute] {
        try database.read { db in
            var ended: [RouteIdentity: PlannedRoute] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT destination, tableNumber, device, protocol FROM ended") {
                // An unreadable end is one vtid does not know of: it removes nothing for it.
                guard let destination = IPPrefix(row[0] as String), let device = InterfaceName(row[2] as String),
                      let table = UInt32(exactly: row[1] as Int64), let number = UInt8(exactly: row[3] as Int64) else { continue }
                let route = PlannedRoute(destination: destination, device: device, table: table, routeProtocol: RouteProtocolNumber(rawValue: number))
                ended[RouteIdentity(route)] = route
            }
            return ended
        }
    }

    /// The routes of up tunnels, and the rows it could not read (shown as a problem, never dropped silently).
    public func routes() throws -> (records: [OwnedRoute], unreadable: [String]) {
        try rows("SELECT * FROM route ORDER BY connection, peerClient, destination", what: "route", OwnedRoute.init(row:))
    }
}

/// SQLite's quick_check found damage.
public struct StoreIntegrityError: Error, CustomStringConvertible {
    public var findings: String
    public var description: String { "integrity check failed: \(findings)" }
}

extension LeaseRecord: FetchableRecord, PersistableRecord {
    public static var databaseTableName: String { "lease" }
}

/// A device vtid manages (created, adopted or configured), and the conn it belongs to.
public struct OwnedDevice: Sendable, Hashable {
    public var connection: String
    public var setup: DeviceSetup

    public init(connection: String, setup: DeviceSetup) {
        self.connection = connection
        self.setup = setup
    }

    init?(row: Row) {
        guard let name = InterfaceName(row["name"] as String), let local = IPAddress(row["local"] as String),
              let remote = IPAddress(row["remote"] as String) else { return nil }
        let addresses = (row["addresses"] as String).split(separator: ",").compactMap { item -> DeviceSetup.Address? in
            let parts = item.split(separator: " ")
            guard parts.count == 2, let device = InterfaceName(parts[0]), let prefix = IPPrefix(parts[1]) else { return nil }
            return DeviceSetup.Address(device: device, prefix: prefix)
        }
        let mtu: TunnelMTUPolicy = (row["fixedMTU"] as Int?).map { .fixed($0) } ?? .derived(fallbackSuite: .conservative)
        connection = row["connection"]
        let device: TunnelDeviceSpec
        if let interfaceID = row["interfaceID"] as Int64? {
            guard let interfaceID = UInt32(exactly: interfaceID) else { return nil }
            let underlying = (row["underlying"] as String?).map(InterfaceName.init)
            guard underlying != .some(nil) else { return nil }
            device = .xfrmInterface(XfrmInterfaceSpec(name: name, interfaceID: interfaceID, underlying: underlying ?? nil, local: local, remote: remote))
        } else {
            guard let inputKey = UInt32(exactly: row["inputKey"] as Int64), let outputKey = UInt32(exactly: row["outputKey"] as Int64) else { return nil }
            device = .vti(VTIDeviceSpec(name: name, local: local, remote: remote, inputKey: inputKey, outputKey: outputKey))
        }
        setup = DeviceSetup(
            device: device,
            routing: row["routing"], shared: row["shared"], clientFamily: (row["clientFamily"] as Int) == 4 ? .ipv4 : .ipv6,
            addresses: addresses, mtu: mtu)
    }
}

/// A route an up tunnel should have: what the hook's plan installed for it, and the tunnel's reqid,
/// by which vtid finds its SAs in the kernel.
public struct OwnedRoute: Sendable, Hashable {
    public var connection: String
    public var peerClient: IPPrefix
    public var route: PlannedRoute
    public var reqid: UInt32?

    public init(connection: String, peerClient: IPPrefix, route: PlannedRoute, reqid: UInt32?) {
        self.connection = connection
        self.peerClient = peerClient
        self.route = route
        self.reqid = reqid
    }

    /// nil for a row that does not hold a route (numbers out of range included): shown as unreadable.
    init?(row: Row) {
        guard let destination = IPPrefix(row["destination"] as String), let peerClient = IPPrefix(row["peerClient"] as String),
              let device = InterfaceName(row["device"] as String), let table = UInt32(exactly: row["tableNumber"] as Int64),
              let number = UInt8(exactly: row["protocol"] as Int64) else { return nil }
        let metric = (row["metric"] as Int64?).map { UInt32(exactly: $0) }
        let reqid = (row["reqid"] as Int64?).map { UInt32(exactly: $0) }
        guard metric != .some(nil), reqid != .some(nil) else { return nil }
        connection = row["connection"]
        self.peerClient = peerClient
        route = PlannedRoute(destination: destination, device: device, gateway: (row["gateway"] as String?).flatMap(IPAddress.init),
                             preferredSource: (row["source"] as String?).flatMap(IPAddress.init), table: table,
                             metric: metric ?? nil, routeProtocol: RouteProtocolNumber(rawValue: number))
        self.reqid = reqid ?? nil
    }
}
