//! Percent-encoding as URLs carry it: what the API's query strings and
//! the authenticators' header values (impersonation extras, request
//! paths) are decoded with alike.

/// Percent-decodes one query component (`+` is a space); `None` when it is
/// not valid percent-encoding or not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_escapes_and_plus_or_refuses() {
        assert_eq!(decode("a%3Db+c").as_deref(), Some("a=b c"));
        assert_eq!(decode("%E2%9C%93").as_deref(), Some("\u{2713}"));
        for bad in ["%zz", "a%2", "%", "%ff"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
