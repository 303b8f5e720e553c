// `--short-names`: C++ and Rust names without template arguments, parameter
// lists, qualifiers or return types, as a flame graph wants them:
//   "void fixture::Parker<int>::park(int) const" → "fixture::Parker::park"
//   "<parked::Store>::park::<&str>"              → "parked::Store::park"
// Operators keep their symbols, lambdas and "(anonymous namespace)" their text.

enum ShortNames {
    static func trim(_ name: String) -> String {
        let characters = Array(name)
        var output: [Character] = []
        var index = 0
        func endsWithOperator() -> Bool { String(output).hasSuffix("operator") }
        // Where a type may start: "<T as Trait>::f" is a qualified path, "f::<T>" and "f<T>" are arguments.
        // ("operator< <int>" is an operator with its template arguments.)
        func atTypeStart() -> Bool {
            guard output.last == " " else { return output.isEmpty || output.last == "(" }
            return !(output.dropLast().split(separator: " ").last.map { String($0).hasPrefix("operator") } ?? false)
        }

        while index < characters.count {
            let character = characters[index]
            switch character {
            case "<" where endsWithOperator() || output.last == "<" && String(output).hasSuffix("operator<"):
                output.append(character)
                index += 1
            case "<" where atTypeStart():
                // A Rust qualified path, "<Type>::f" or "<Type as Trait>::f": keep the type.
                let end = matching(characters, from: index, open: "<", close: ">")
                let inner = String(characters[(index + 1)..<max(index + 1, end)])
                let type = inner.firstRange(of: " as ").map { String(inner[..<$0.lowerBound]) } ?? inner
                output += trim(type)
                index = end + 1
            case "<":
                // Template or generic arguments (and Rust's "::<...>" turbofish with its "::").
                if String(output).hasSuffix("::") { output.removeLast(2) }
                index = matching(characters, from: index, open: "<", close: ">") + 1
            case "{":
                let end = matching(characters, from: index, open: "{", close: "}")
                output += characters[index...min(end, characters.count - 1)]
                index = end + 1
            case "(" where endsWithOperator():
                output += ["(", ")"]
                index = matching(characters, from: index, open: "(", close: ")") + 1
            case "(" where String(characters[index...].prefix(21)) == "(anonymous namespace)":
                output += characters[index..<(index + 21)]
                index += 21
            case "(":
                // A parameter list: gone, and what follows it unless the name goes on ("::").
                index = matching(characters, from: index, open: "(", close: ")") + 1
                if !(index + 1 < characters.count && characters[index] == ":" && characters[index + 1] == ":") {
                    index = characters.count
                }
            default:
                output.append(character)
                index += 1
            }
        }
        while output.last == " " { output.removeLast() }
        return withoutReturnType(String(output))
    }

    /// "void ns::f" → "ns::f": the text before the last space that is not inside
    /// braces and not the one in "operator new" and the like.
    private static func withoutReturnType(_ name: String) -> String {
        var depth = 0
        var cut: String.Index?
        var index = name.startIndex
        while index < name.endIndex {
            switch name[index] {
            case "{", "(": depth += 1
            case "}", ")": depth -= 1
            case " " where depth == 0 && !(name[..<index].split(separator: " ").last?.hasPrefix("operator") ?? false):
                cut = name.index(after: index)
            default: break
            }
            index = name.index(after: index)
        }
        return cut.map { String(name[$0...]) } ?? name
    }

    /// The index of the bracket closing the one at `start` (the last index when unbalanced).
    private static func matching(_ characters: [Character], from start: Int, open: Character, close: Character) -> Int {
        var depth = 0
        var index = start
        while index < characters.count {
            if characters[index] == open {
                depth += 1
            } else if characters[index] == close, !(close == ">" && index > 0 && characters[index - 1] == "-") {
                depth -= 1
                if depth == 0 { return index }
            }
            index += 1
        }
        return characters.count - 1
    }
}
