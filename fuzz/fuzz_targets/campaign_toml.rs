#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_node_fuzz::campaign_toml(data));
