#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_node_fuzz::http_request_head(data));
