//! Entry points for the fuzz targets (`fuzz/`): the parsers of outside bytes this crate keeps
//! private, driven as the server drives them. Not an API.

/// A request head on the node's TCP port (the page, the certificate hash, the WebSocket
/// upgrade), as `cert_http` reads it: without the blank line that ends it.
pub fn http_request_head(head: &[u8]) {
    crate::cert_http::fuzz_request_head(head);
}
