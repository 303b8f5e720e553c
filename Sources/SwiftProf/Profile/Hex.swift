// How numbers are printed: addresses the way Go's %#x prints them (0x and lowercase hex, no
// padding), and decimals with a fixed number of places.

@inline(__always)
public func hex(_ value: UInt64, prefix: String = "") -> String {
    prefix + "0x" + String(value, radix: 16)
}

/// The value of a "0x"-prefixed hex number, as `hex` prints it and /proc prints them.
func parseHex<S: StringProtocol>(_ text: S) -> UInt64? {
    guard text.hasPrefix("0x"), text.count > 2 else { return nil }
    return UInt64(text.dropFirst(2), radix: 16)
}

extension Substring {
    /// The last occurrence of `marker`, searched from the end.
    func lastRange(of marker: String) -> Range<Substring.Index>? {
        var index = endIndex
        while index > startIndex {
            index = self.index(before: index)
            if self[index...].hasPrefix(marker) { return index..<self.index(index, offsetBy: marker.count) }
        }
        return nil
    }
}

/// `value` rounded to `places` decimals, written out in full ("0.050", "12.3"): no
/// Foundation formatter, and the same digits on every machine.
public func decimal(_ value: Double, places: Int) -> String {
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale), fraction = String(scaled % Int(scale))
    return places == 0 ? String(whole) : "\(whole).\(String(repeating: "0", count: places - fraction.count))\(fraction)"
}
