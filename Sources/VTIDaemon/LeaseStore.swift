import ControlProtocol
import GRDB

/// The address-pool lease table, in SQLite so that it survives restarts and crashes: a pool address
/// and the client that holds (or last held) it. One row per address; a new client taking an
/// address replaces the row and starts its first-seen time again.
public final class LeaseStore: Sendable {
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
        try migrator.migrate(database)
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

        /// The client holding `address` on `connection` went down; pluto's final byte counts if it sent them.
        public func disconnected(address: String, connection: String, inBytes: UInt64?, outBytes: UInt64?, at time: Int64) throws {
            try db.cachedStatement(sql: """
                UPDATE lease SET connected = 0, lastSeen = ?, inBytes = coalesce(?, inBytes), outBytes = coalesce(?, outBytes)
                WHERE address = ? AND connection = ?
                """).execute(arguments: [time, inBytes.map { Int64(clamping: $0) }, outBytes.map { Int64(clamping: $0) }, address, connection])
        }
    }

    public func all() throws -> [LeaseRecord] {
        try database.read { try LeaseRecord.order(Column("address")).fetchAll($0) }
    }
}

extension LeaseRecord: FetchableRecord, PersistableRecord {
    public static var databaseTableName: String { "lease" }
}
