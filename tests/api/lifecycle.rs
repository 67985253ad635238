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
    assert_eq!(
        applied,
        kindling::db::MIGRATOR.iter().count(),
        "each migration applied exactly once"
    );

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
    // The PUT is in flight on a locked row when SIGTERM arrives.
    let (mut locker, put) = put_blocked_on_a_row_lock(&server).await;
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();

    let res = put.await.unwrap().expect("in-flight request completed");
    assert_eq!(res.status(), StatusCode::OK);
    // Grace period of the test server (5 s) plus margin.
    assert_eq!(server.wait_exit(Duration::from_secs(8)).await, 0);
}

/// A server whose queries may wait 60 s, with `grace` seconds after SIGTERM.
async fn server_allowing_long_queries(grace: &str) -> ServerProcess {
    ServerProcess::start(&[
        ("SHUTDOWN_GRACE_SECS", grace),
        ("DATABASE_QUERY_TIMEOUT_MS", "60000"),
    ])
    .await
}

/// A PUT that waits on a row lock held by `locker` until the test lets go.
pub async fn put_blocked_on_a_row_lock(
    server: &ServerProcess,
) -> (
    PgConnection,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    let (base, client) = (server.base.clone(), server.client.clone());
    let item: serde_json::Value = client
        .post(format!("{base}/api/items"))
        .json(&json!({"name": "held"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut locker = PgConnection::connect(&server.database_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("SELECT 1 FROM items WHERE id = $1 FOR UPDATE")
        .bind(item["id"].as_i64().unwrap())
        .execute(&mut locker)
        .await
        .unwrap();
    let put = tokio::spawn(async move {
        client
            .put(format!("{base}/api/items/{}", item["id"]))
            .json(&json!({"name": "after the lock"}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    (locker, put)
}

#[tokio::test(flavor = "multi_thread")]
async fn request_outliving_the_grace_period_does_not_keep_the_process_alive() {
    // The query may wait 60 s, far beyond the 1 s grace: only the shutdown
    // bound (grace + Rocket's 2 s mercy) can end it.
    let mut server = server_allowing_long_queries("1").await;
    let (_locker, put) = put_blocked_on_a_row_lock(&server).await;
    let started = std::time::Instant::now();
    server.sigterm();
    server.wait_exit(Duration::from_secs(6)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "exited after {waited:?}, before the grace period ended"
    );
    // The client sees the connection end, not a hang.
    let outcome = tokio::time::timeout(Duration::from_secs(2), put)
        .await
        .expect("the held request was left hanging")
        .unwrap();
    assert!(
        outcome.is_err() || !outcome.unwrap().status().is_success(),
        "the held request cannot have succeeded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_connection_after_sigterm_is_refused_not_left_waiting() {
    let mut server = server_allowing_long_queries("5").await;
    // An in-flight request keeps the process in its grace period.
    let (locker, put) = put_blocked_on_a_row_lock(&server).await;
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server.child_is_running(),
        "the process should still be serving its in-flight request"
    );
    let started = std::time::Instant::now();
    let res = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
        .get(server.url("/api/v1/health/live"))
        .send()
        .await;
    let waited = started.elapsed();
    assert!(res.is_err(), "a new request was served after SIGTERM");
    assert!(
        waited < Duration::from_secs(1),
        "a new connection waited {waited:?} instead of being refused"
    );
    locker.close().await.unwrap();
    put.await.unwrap().expect("the in-flight request completes");
    assert_eq!(server.wait_exit(Duration::from_secs(8)).await, 0);
}
