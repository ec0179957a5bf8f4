//! JSON strings written byte for byte as serde_json writes them, without serde: log lines
//! and error bodies are written on every request, and serde_json escapes byte by byte.

use std::fmt;

/// Writes a JSON string's contents (no quotes) to the inner writer, escaped as serde_json
/// escapes them.
pub struct Escaped<W>(pub W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // Almost every value needs no escape; a check without an early exit vectorizes.
        let plain = text.bytes().fold(true, |plain, b| {
            plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
        });
        if plain {
            return self.0.write_str(text);
        }
        let mut clean = 0;
        for (at, byte) in text.bytes().enumerate() {
            let short = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..0x20 => "",
                _ => continue,
            };
            // Escaped bytes are ASCII, so these are character boundaries.
            self.0.write_str(&text[clean..at])?;
            clean = at + 1;
            if short.is_empty() {
                let code = [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
                self.0.write_str("\\u00")?;
                self.0
                    .write_str(std::str::from_utf8(&code).unwrap_or("00"))?;
            } else {
                self.0.write_str(short)?;
            }
        }
        self.0.write_str(&text[clean..])
    }
}

/// Writes `text` as a quoted JSON string.
pub fn write_string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    fmt::Write::write_str(&mut Escaped(&mut *out), text)?;
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(
            text in prop_oneof![any::<String>(), "[\\x00-\\x7f]{0,40}"]
        ) {
            let mut ours = String::new();
            write_string(&mut ours, &text).unwrap();
            prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
        }
    }
}
