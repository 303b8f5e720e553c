// Addresses are printed the way Go's %#x prints them: 0x and lowercase hex, no padding.

@inline(__always)
public func hex(_ value: UInt64, prefix: String = "") -> String {
    prefix + "0x" + String(value, radix: 16)
}
