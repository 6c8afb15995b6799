import ControlProtocol
import Foundation
import LocalIPC

/// One request to vtid over its control socket, for vtictl and tests.
public struct ControlClient: Sendable {
    public var runDirectory: String

    public init(runDirectory: String = ControlProtocol.defaultRunDirectory) {
        self.runDirectory = runDirectory
    }

    /// Why a request got no answer, in one sentence.
    public enum Failure: Error, CustomStringConvertible {
        /// No vtid serves this run directory.
        case notRunning(String)
        case failed(String)
        /// vtid answered `"ok": false`.
        case refused(String)

        public var description: String {
            switch self {
            case .notRunning(let path): "vtid is not running (nothing listens on \(path))"
            case .failed(let text): text
            case .refused(let text): "vtid: \(text)"
            }
        }
    }

    /// Sends `request` (protocol version added) and returns the answer line, checked for `"ok"`.
    public func send(_ request: String, _ members: [String: JSONValue] = [:], timeoutMilliseconds: Int32 = 10_000) throws(Failure) -> [UInt8] {
        let path = ControlProtocol.socketPath(in: runDirectory)
        var object = members
        object["version"] = .number(Double(ControlProtocol.version))
        object["request"] = .string(request)
        let line: [UInt8]?
        do throws(LocalSocketError) {
            let socket = try LocalSocket.connect(path: path, timeoutMilliseconds: timeoutMilliseconds)
            let sent = Result { () throws(LocalSocketError) in try socket.send(line: JSONValue.object(object).serialized) }
            if case .failure(let sendFailure) = sent {
                // vtid may have answered (a refusal) and closed before reading: show its answer.
                let answer = Result { () throws(LocalSocketError) in try socket.readLine(limit: ControlProtocol.maximumReplyBytes, timeoutMilliseconds: 0) }
                guard case .success(let text?) = answer else { throw sendFailure }
                line = text
            } else {
                line = try socket.readLine(limit: ControlProtocol.maximumReplyBytes, timeoutMilliseconds: timeoutMilliseconds)
            }
        } catch where error.isNobodyListening {
            throw .notRunning(path)
        } catch where error.errno == .permissionDenied {
            throw .failed("permission denied on \(path): vtid's socket is for root (and its socket_group)")
        } catch {
            throw .failed("vtid's control socket \(path): \(error)")
        }
        return try check(line, path: path)
    }

    private func check(_ line: [UInt8]?, path: String) throws(Failure) -> [UInt8] {
        guard let line else { throw .failed("vtid closed the connection without answering (\(path))") }
        guard let reply = try? JSONValue(parsing: line) else { throw .failed("vtid's answer is not JSON") }
        guard reply["ok"]?.boolValue == true else { throw .refused(reply["error"]?.stringValue ?? "request failed") }
        return line
    }

    /// Sends `request` and decodes the answer.
    public func fetch<Reply: Decodable>(_ request: String, as type: Reply.Type) throws(Failure) -> Reply {
        let line = try send(request)
        do {
            return try JSONDecoder().decode(Reply.self, from: Data(line))
        } catch {
            throw .failed("vtid's answer to \(request) does not match this vtictl: \(error)")
        }
    }
}
