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
            database = try DatabaseQueue(path: path, configuration: configuration)
            // WAL: a crash loses at most the last transaction, and commits do not wait for fsync.
            try database.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL") }
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

    /// A client came up with this address.
    public func connected(address: String, connection: String, peerID: String, peerAddress: String, spiIn: UInt32?, spiOut: UInt32?, at time: Int64) throws {
        try database.write { db in
            var lease = try LeaseRecord.fetchOne(db, key: address) ?? LeaseRecord(
                address: address, connection: connection, peerID: peerID, peerAddress: peerAddress, firstSeen: time, lastSeen: time, connected: true)
            if lease.peerID != peerID || lease.connection != connection {
                lease = LeaseRecord(address: address, connection: connection, peerID: peerID, peerAddress: peerAddress, firstSeen: time, lastSeen: time, connected: true)
            }
            lease.peerAddress = peerAddress
            lease.lastSeen = time
            lease.connected = true
            lease.spiIn = spiIn
            lease.spiOut = spiOut
            try lease.save(db)
        }
    }

    /// The client holding `address` on `connection` went down; pluto's final byte counts if it sent them.
    public func disconnected(address: String, connection: String, inBytes: UInt64?, outBytes: UInt64?, at time: Int64) throws {
        try database.write { db in
            guard var lease = try LeaseRecord.fetchOne(db, key: address), lease.connection == connection else { return }
            lease.connected = false
            lease.lastSeen = time
            if let inBytes { lease.inBytes = inBytes }
            if let outBytes { lease.outBytes = outBytes }
            try lease.save(db)
        }
    }

    public func all() throws -> [LeaseRecord] {
        try database.read { try LeaseRecord.order(Column("address")).fetchAll($0) }
    }
}

extension LeaseRecord: FetchableRecord, PersistableRecord {
    public static var databaseTableName: String { "lease" }
}
