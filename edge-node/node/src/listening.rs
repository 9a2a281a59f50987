//! What `serve` bound, on stdout as one JSON object per line, so a supervisor or a test that
//! passed port 0 learns the ports the node chose without parsing log text:
//!
//! ```text
//! {"event":"admin_listening","admin":"127.0.0.1:41235"}
//! {"event":"serving","quic":"127.0.0.1:39001","url":"https://127.0.0.1:39001/","certificate_sha256":"…","admin":"127.0.0.1:41235"}
//! ```
//!
//! `admin_listening` comes as soon as the admin server is bound (probes answer, not ready);
//! `serving` once the first frame has arrived. `quic` is the UDP address; the certificate hash
//! is served over TCP on the same port number.

use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Listening<'a> {
    AdminListening {
        admin: SocketAddr,
    },
    Serving {
        quic: SocketAddr,
        url: &'a str,
        certificate_sha256: &'a str,
        admin: SocketAddr,
    },
}

impl Listening<'_> {
    /// Writes the line and flushes it (stdout may be a pipe).
    pub fn report(&self) {
        let line = serde_json::to_string(self).expect("addresses and strings always serialize");
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the node: the same facts are in the log.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}
