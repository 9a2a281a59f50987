//! Text log lines that outside input can neither break nor forge.
//!
//! Log fields carry what peers send: control messages, URL queries, zone hints, relay reasons.
//! The text format writes a field as it is, so a `\n` inside one would end the node's line and
//! start one of the peer's choosing (`2099-01-01T00:00:00Z ERROR injected line`), and an escape
//! sequence could rewrite an operator's terminal. The formatter writes each event as one
//! buffer ending in its newline; this writer escapes every other control character in it
//! (`\n`, `\r`, `\x1b`, ...), keeping tabs and, when colours are on (only when the log goes to
//! a terminal), colour sequences (`ESC [ digits ; m`), which is all the formatter writes and
//! all a peer could smuggle through. JSON logs escape on their own.

use std::io::{self, Write};

/// Escapes a formatted log event: interior control characters become `\n`, `\r` or `\xNN`;
/// the final newline stays. With `keep_colours`, colour sequences pass.
pub fn escape_event(event: &[u8], keep_colours: bool) -> Vec<u8> {
    let (body, newline) = match event.split_last() {
        Some((b'\n', body)) => (body, true),
        _ => (event, false),
    };
    let mut out = Vec::with_capacity(event.len() + 8);
    for (i, &byte) in body.iter().enumerate() {
        match byte {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(byte),
            0x1b if keep_colours && is_colour_sequence(&body[i..]) => out.push(byte),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
            _ => out.push(byte),
        }
    }
    if newline {
        out.push(b'\n');
    }
    out
}

/// Whether `bytes` opens with an SGR (colour) sequence: `ESC [`, digits and `;`, then `m`.
fn is_colour_sequence(bytes: &[u8]) -> bool {
    let Some(rest) = bytes.strip_prefix(b"\x1b[") else {
        return false;
    };
    let params = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b';')
        .count();
    rest.get(params) == Some(&b'm')
}

/// Standard error, one escaped event per write.
pub struct EscapingStderr {
    pub keep_colours: bool,
}

impl Write for EscapingStderr {
    fn write(&mut self, event: &[u8]) -> io::Result<usize> {
        io::stderr().write_all(&escape_event(event, self.keep_colours))?;
        Ok(event.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_line_stays_inside_the_real_one() {
        let event =
            b"INFO control rejected field=\"x\n2099-01-01T00:00:00Z ERROR injected line\"\n";
        let escaped = String::from_utf8(escape_event(event, false)).unwrap();
        assert_eq!(
            escaped,
            "INFO control rejected field=\"x\\n2099-01-01T00:00:00Z ERROR injected line\"\n"
        );
        assert_eq!(escaped.lines().count(), 1);
    }

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        let escaped = escape_event("a\rb\x1b[2Jc\x00d\x7fé\tz\n".as_bytes(), false);
        assert_eq!(
            String::from_utf8(escaped).unwrap(),
            "a\\rb\\x1b[2Jc\\x00d\\x7fé\tz\n"
        );
        // Colours on (a terminal): colour sequences pass; line breaks and any other escape
        // sequence (here: clear the screen) still do not.
        let escaped = escape_event(b"\x1b[32mINFO\x1b[0m a\nb\x1b[2J\n", true);
        assert_eq!(escaped, b"\x1b[32mINFO\x1b[0m a\\nb\\x1b[2J\n");
    }
}
