// Text put inside another language's syntax (XML, Mermaid labels): each
// character that would end or change the syntax replaced by its escape.

func escaping(_ text: String, _ replacements: [Character: String]) -> String {
    var escaped = ""
    for character in text {
        if let replacement = replacements[character] { escaped += replacement } else { escaped.append(character) }
    }
    return escaped
}
