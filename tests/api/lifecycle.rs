//! The binary as Kubernetes runs it: `kindling migrate`, configuration
//! errors, and SIGTERM with a request in flight. After SIGTERM every test
//! waits exactly the bound the code gives (`cli::shutdown_bound`, which the
//! README states) plus [`EPSILON`].

use std::time::{Duration, Instant};

use kindling::cli::shutdown_bound;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::helpers::{ServerProcess, fresh_database, kindling_command as kindling};

/// Beyond the bound: the process's own start-up of each term and this
/// test's polling (every 50 ms).
const EPSILON: Duration = Duration::from_millis(500);

/// Waits for the exit of `server`, sent SIGTERM at `sent` with
/// SHUTDOWN_GRACE_SECS = `grace` and (`loki`) LOKI_URL set: it must come
/// within the shutdown bound plus [`EPSILON`]. Returns the exit code and the
/// time from SIGTERM to exit.
async fn exits_within_the_shutdown_bound(
    server: &mut ServerProcess,
    sent: Instant,
    grace: Duration,
    loki: bool,
) -> (i32, Duration) {
    let bound = shutdown_bound(grace, loki);
    let code = server
        .wait_exit((bound + EPSILON).saturating_sub(sent.elapsed()))
        .await;
    let took = sent.elapsed();
    eprintln!(
        "exit {code} {took:.2?} after SIGTERM (grace {grace:?}, loki {loki}, bound {bound:?})"
    );
    (code, took)
}

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
    let sent = Instant::now();
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();

    let res = put.await.unwrap().expect("in-flight request completed");
    assert_eq!(res.status(), StatusCode::OK);
    let grace = Duration::from_secs(5);
    let (code, _) = exits_within_the_shutdown_bound(&mut server, sent, grace, false).await;
    assert_eq!(code, 0);
}

/// A server whose queries may wait 60 s, with `grace` seconds after SIGTERM
/// and the variables in `extra`.
async fn server_allowing_long_queries(grace: &str, extra: &[(&str, &str)]) -> ServerProcess {
    let mut env = vec![
        ("SHUTDOWN_GRACE_SECS", grace),
        ("DATABASE_QUERY_TIMEOUT_MS", "60000"),
    ];
    env.extend_from_slice(extra);
    ServerProcess::start(&env).await
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

#[test]
fn the_readme_states_the_shutdown_bound_the_code_gives() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let beyond_grace = |loki| shutdown_bound(Duration::ZERO, loki).as_secs_f64();
    let sentence = format!(
        "gone at most `SHUTDOWN_GRACE_SECS` + {:.1} s after SIGTERM, + {:.1} s with `LOKI_URL` set",
        beyond_grace(false),
        beyond_grace(true)
    );
    assert!(
        readme.contains(&sentence),
        "README.md should say: {sentence}"
    );
}

/// The client of a request cut off at shutdown sees its connection end, not
/// a hang and not a success.
async fn assert_cut_off(put: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>) {
    let outcome = tokio::time::timeout(Duration::from_secs(2), put)
        .await
        .expect("the held request was left hanging")
        .unwrap();
    assert!(
        outcome.is_err() || !outcome.unwrap().status().is_success(),
        "the held request cannot have succeeded"
    );
}

/// SIGTERM while a PUT waits on a row lock that is never released, with a
/// 1 s grace and queries allowed 60 s: only the shutdown bound can end the
/// process. It exits 1 (Rocket's shutdown failed) within the bound, not
/// before the grace period ends, and the PUT's client sees its connection end.
async fn request_outliving_a_1_s_grace(loki_url: Option<&str>) {
    let grace = Duration::from_secs(1);
    let loki = loki_url.map(|url| ("LOKI_URL", url));
    let mut server = server_allowing_long_queries("1", loki.as_slice()).await;
    let (_locker, put) = put_blocked_on_a_row_lock(&server).await;
    let sent = Instant::now();
    server.sigterm();
    let (code, took) =
        exits_within_the_shutdown_bound(&mut server, sent, grace, loki.is_some()).await;
    assert!(
        took >= grace,
        "exited after {took:?}, before the grace period ended"
    );
    assert_eq!(code, 1, "a request was cut off: Rocket's shutdown failed");
    assert_cut_off(put).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn request_outliving_the_grace_period_does_not_keep_the_process_alive() {
    request_outliving_a_1_s_grace(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_loki_and_a_request_outliving_the_grace_period_end_within_the_shutdown_bound() {
    // Every term of the bound is spent: the request outlives grace and mercy,
    // and the final flush waits for a Loki that takes pushes and never answers.
    let loki = format!("http://127.0.0.1:{}", crate::loki::hanging_receiver().await);
    request_outliving_a_1_s_grace(Some(&loki)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn new_connection_after_sigterm_is_refused_not_left_waiting() {
    let mut server = server_allowing_long_queries("5", &[]).await;
    // An in-flight request keeps the process in its grace period.
    let (locker, put) = put_blocked_on_a_row_lock(&server).await;
    let sent = Instant::now();
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server.child_is_running(),
        "the process should still be serving its in-flight request"
    );
    let started = Instant::now();
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
    let grace = Duration::from_secs(5);
    let (code, _) = exits_within_the_shutdown_bound(&mut server, sent, grace, false).await;
    assert_eq!(code, 0);
}
