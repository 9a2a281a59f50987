//! Viewer tokens end to end: a node with auth required refuses every bad token at connect,
//! with a reason the viewer sees, and serves a valid one.

mod common;

use common::*;
use edge_core::sei::unix_now_us;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "edge-node-test-secret-0123456789abcdef";

fn token(claims: serde_json::Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[test]
fn every_bad_token_is_refused_with_its_reason() {
    let mut cmd = node_command();
    cmd.env("EDGE_NODE_AUTH_REQUIRED", "true")
        .env("EDGE_NODE_AUTH_HS256_SECRET", SECRET)
        .args([
            "serve",
            "--upstream",
            "testshow://?width=320&height=180&fps=30",
            "--listen",
            "127.0.0.1:0",
        ]);
    let node = spawn_serving(cmd);

    let now = (unix_now_us() / 1_000_000) as i64;
    let view = |query: &str| {
        node_command()
            .args(["view", node.url(query).as_str(), "--duration", "2"])
            .output()
            .expect("run view")
    };
    let refusals = [
        (String::new(), "missing token"),
        (
            format!(
                "?token={}",
                token(json!({"sub": "u1", "exp": now - 3600}), SECRET)
            ),
            "token expired",
        ),
        (
            format!(
                "?token={}",
                token(
                    json!({"sub": "u1", "exp": now + 600}),
                    "a-different-secret-of-enough-length!!"
                )
            ),
            "signature does not verify",
        ),
        ("?token=garbage".to_string(), "malformed token"),
        (
            format!(
                "?zone=default&token={}",
                token(
                    json!({"sub": "u1", "zones": ["yintai-mall"], "exp": now + 600}),
                    SECRET
                )
            ),
            "does not allow zone",
        ),
    ];
    for (query, reason) in &refusals {
        let out = view(query);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{query} must be refused");
        assert!(
            stderr.contains(reason),
            "refusal for {query:?} says {reason:?}: {stderr}"
        );
    }

    let good = token(
        json!({"sub": "u1", "name": "Lin", "zones": ["yintai-mall"], "exp": now + 600}),
        SECRET,
    );
    let out = view(&format!("?zone=yintai-mall&token={good}"));
    assert!(
        out.status.success(),
        "a valid token is served: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !node.log_text().contains(&good),
        "tokens never reach the node's log"
    );
}
