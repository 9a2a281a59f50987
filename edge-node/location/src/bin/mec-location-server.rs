//! A stand-alone ETSI MEC 013 V2.2.1 Location API server for manual checks and demos.
//!
//! ```text
//! mec-location-server --listen 127.0.0.1:8091 --users users.json
//! curl 'http://127.0.0.1:8091/location/v2/queries/users?address=acr:10.0.0.1'
//! curl -X PUT http://127.0.0.1:8091/_control/users/acr:10.0.0.1 \
//!      -d '{"zoneId": "default", "accessPointId": "cell-9"}'
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use edge_location::testing::{parse_users_file, MecServer};

#[derive(Parser)]
#[command(
    name = "mec-location-server",
    about = "ETSI MEC 013 V2.2.1 Location API server (in-memory users and zonal-traffic subscriptions)"
)]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: SocketAddr,
    /// JSON file of users: {"users": [{"address", "zoneId", "accessPointId", "latitude"?, "longitude"?}]}.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Require `Authorization: Bearer <TOKEN>` on API requests.
    #[arg(long)]
    bearer_token: Option<String>,
    /// Delay every API answer by this many milliseconds (to try timeouts).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mec-location-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let seed = match &args.users {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            parse_users_file(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let server = MecServer::start(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    for user in &seed {
        server.set_user(&user.address, &user.zone_id, &user.access_point_id);
        server.set_user_location(&user.address, user.location);
    }
    server.require_bearer_token(args.bearer_token.as_deref());
    server.delay(Duration::from_millis(args.delay_ms));
    println!(
        "Location API (ETSI MEC 013 V2.2.1) at {}location/v2 with {} users; \
         move a user with PUT {}_control/users/<address>; Ctrl-C stops",
        server.base_url(),
        seed.len(),
        server.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    server.shutdown().await;
    Ok(())
}
