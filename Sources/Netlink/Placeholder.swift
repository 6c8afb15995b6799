internal import CLibmnl
public enum NetlinkPlaceholder { public static func portidZero() -> Bool { true } }
