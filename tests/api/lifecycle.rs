//! The binary as Kubernetes runs it: `kindling migrate`, configuration
//! errors, and SIGTERM with a request in flight.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::helpers::{ServerProcess, fresh_database, kindling_command as kindling};

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrators_are_safe_and_rerunning_is_harmless() {
    let url = fresh_database().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { kindling::db::migrate(&url).await })
        })
        .collect();
    let mut applied = 0;
    for run in runs {
        applied += run.await.unwrap().expect("every migrator succeeds");
    }
    assert_eq!(applied, 2, "each migration applied exactly once");

    let out = kindling(&["migrate"], &[("DATABASE_URL", &url)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"applied\":0"),
        "re-run applied something: {stdout}"
    );
}

#[test]
fn missing_or_malformed_settings_stop_with_one_clear_line() {
    let out = kindling(&["serve"], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "configuration error: DATABASE_URL is not set"
    );

    let out = kindling(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://u:p@localhost/db"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "soon"),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_ACQUIRE_TIMEOUT_MS"), "{stderr}");

    let out = kindling(&["frobnicate"], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let mut server = ServerProcess::start(&[("SHUTDOWN_GRACE_SECS", "5")]).await;
    let (base, client) = (server.base.clone(), server.client.clone());
    let url = server.database_url.clone();
    let item: serde_json::Value = client
        .post(format!("{base}/api/items"))
        .json(&json!({"name": "in flight"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Hold the row lock so the PUT below is in flight when SIGTERM arrives.
    let mut locker = PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("SELECT 1 FROM items WHERE id = $1 FOR UPDATE")
        .bind(item["id"].as_i64().unwrap())
        .execute(&mut locker)
        .await
        .unwrap();
    let put = tokio::spawn({
        let url = format!("{base}/api/items/{}", item["id"]);
        let client = client.clone();
        async move {
            client
                .put(url)
                .json(&json!({"name": "finished"}))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();

    let res = put.await.unwrap().expect("in-flight request completed");
    assert_eq!(res.status(), StatusCode::OK);
    // Grace period of the test server (5 s) plus margin.
    assert_eq!(server.wait_exit(Duration::from_secs(8)).await, 0);
}
