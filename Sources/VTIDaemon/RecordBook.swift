import Foundation
import VTIModel

/// One change to vtid's records (leases, devices, routes, ended routes), as data: what an applied
/// event or a reconcile pass means for the records, written in one transaction, and kept in memory
/// to be written again while the store refuses it (a full disk).
enum RecordChange: Sendable {
    case device(OwnedDevice)
    case removeDevice(name: String)
    case route(OwnedRoute)
    /// A tunnel ended: its route records go, and each route it had is remembered as ended.
    case tunnelEnded(connection: String, peerClient: IPPrefix, routes: [PlannedRoute], at: Int64)
    /// A route is wanted again, or gone from the kernel: its end no longer matters.
    case forgetEnded(RouteIdentity)
    case connected(address: String, connection: String, peerID: String, peerAddress: String, spiIn: UInt32?, spiOut: UInt32?, at: Int64)
    case disconnected(address: String, connection: String, inBytes: UInt64?, outBytes: UInt64?, at: Int64)

    func write(into batch: StateStore.Batch) throws {
        switch self {
        case .device(let owned): try batch.save(owned)
        case .removeDevice(let name): try batch.removeDevice(named: name)
        case .route(let owned):
            try batch.forgetEnded(destination: "\(owned.route.destination)", table: owned.route.table)
            try batch.save(owned)
        case .tunnelEnded(let connection, let peerClient, let routes, let time):
            try batch.removeRoutes(connection: connection, peerClient: "\(peerClient)")
            for route in routes { try batch.ended(route, connection: connection, peerClient: "\(peerClient)", at: time) }
        case .forgetEnded(let identity):
            try batch.forgetEnded(destination: "\(identity.destination)", table: identity.table)
        case .connected(let address, let connection, let peerID, let peerAddress, let spiIn, let spiOut, let time):
            try batch.connected(address: address, connection: connection, peerID: peerID, peerAddress: peerAddress, spiIn: spiIn, spiOut: spiOut, at: time)
        case .disconnected(let address, let connection, let inBytes, let outBytes, let time):
            try batch.disconnected(address: address, connection: connection, inBytes: inBytes, outBytes: outBytes, at: time)
        }
    }
}

/// Writes record changes to the store in order, keeping those it could not write and trying them
/// again first at the next write: a record vtid failed to write is late, never lost while vtid runs.
struct RecordBook {
    let store: StateStore
    /// Changes not yet written, oldest first.
    private(set) var unwritten: [RecordChange] = []
    /// Beyond this many unwritten changes the oldest are dropped (and counted): memory is bounded too.
    let limit = 200_000
    private(set) var dropped = 0

    init(store: StateStore) {
        self.store = store
    }

    /// Writes `changes` (after any earlier unwritten ones) in one transaction. On failure keeps them
    /// all for the next write and returns the store's error.
    mutating func write(_ changes: [RecordChange]) -> (any Error)? {
        let all = unwritten + changes
        guard !all.isEmpty else { return nil }
        do {
            try store.batch { batch in
                for change in all { try change.write(into: batch) }
            }
            unwritten = []
            return nil
        } catch {
            unwritten = all
            if unwritten.count > limit {
                dropped += unwritten.count - limit
                unwritten.removeFirst(unwritten.count - limit)
            }
            return error
        }
    }
}
