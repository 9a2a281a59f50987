//! Round-trip time of `LocationClient::user_zone` against the test server on loopback: the floor
//! of what a viewer join pays for MEC zone resolution before any network distance.
//!
//! `cargo run -p edge-location --example user_zone_latency [QUERIES]`

use std::time::{Duration, Instant};

use edge_location::testing::MecServer;
use edge_location::LocationClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let queries: usize = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("QUERIES `{text}` is not a count"))?,
        None => 2000,
    };
    if queries == 0 {
        return Err("QUERIES must be at least 1".into());
    }
    let server = MecServer::start("127.0.0.1:0".parse()?).await?;
    for host in 1..=200u8 {
        server.set_user(&format!("acr:10.0.1.{host}"), "yintai-mall", "cell-1");
    }
    let client = LocationClient::new(server.client_config())?;
    // Warm the connection pool so the numbers are per query, not per connect.
    client.user_zone("10.0.1.1".parse()?).await?;

    let mut samples = Vec::with_capacity(queries);
    let started = Instant::now();
    for i in 0..queries {
        let ip = format!("10.0.1.{}", i % 200 + 1).parse()?;
        let begin = Instant::now();
        client.user_zone(ip).await?;
        samples.push(begin.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "user_zone over loopback, {queries} sequential queries: p50 {:.0} us, p99 {:.0} us, max {:.0} us, {:.0} queries/s",
        micros(at(0.50)),
        micros(at(0.99)),
        micros(at(1.0)),
        queries as f64 / total.as_secs_f64()
    );
    server.shutdown().await;
    Ok(())
}
