//! The pool (sqlx's `PgPool`, built by `kindling::db::DbPool`) against real
//! Postgres: a transaction a handler leaves open is rolled back, a query cut
//! short does not leak into the next user, a restarted server costs no
//! request once it is ready, and checkouts beyond the maximum are 503s.

use std::time::{Duration, Instant};

use kindling::db::{DbPool, PoolFigment};
use reqwest::StatusCode;
use sqlx::{Connection, PgConnection};
use testcontainers_modules::testcontainers::ImageExt;
use testcontainers_modules::testcontainers::core::IntoContainerPort;
use testcontainers_modules::testcontainers::runners::AsyncRunner;

use crate::helpers::{
    ServerProcess, assert_problem, database_url, free_port, fresh_database, postgres_request,
    spawn_app_on,
};

/// The service's pool on a fresh, migrated database.
async fn service_pool(max_connections: u32) -> (DbPool, String) {
    let url = fresh_database().await;
    kindling::db::migrate(&url).await.expect("migrate");
    let pool = DbPool::from_figment(&PoolFigment {
        url: url.clone(),
        max_connections,
        min_connections: 0,
        acquire_timeout_ms: 5_000,
        query_timeout_ms: 10_000,
    })
    .expect("pool settings");
    (pool, url)
}

/// A handler's shape: look a row up under a lock, and return early when it
/// is missing, without committing. Dropping the transaction only queues its
/// ROLLBACK; the pool must get it to the server.
async fn find_item_for_update(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM items WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(id) = found else {
        return Ok(None);
    };
    tx.commit().await?;
    Ok(Some(id))
}

async fn sessions_idle_in_transaction(database_url: &str) -> i64 {
    let mut conn = PgConnection::connect(database_url).await.unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_left_open_by_a_handler_is_rolled_back_when_its_connection_returns() {
    let (pool, url) = service_pool(2).await;
    let mut conn = pool.pool.acquire().await.expect("checkout");
    let found = find_item_for_update(&mut conn, -1).await.expect("query");
    assert_eq!(found, None);
    drop(conn);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        sessions_idle_in_transaction(&url).await,
        0,
        "a session is left idle in transaction, holding its locks"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_cut_short_does_not_leak_into_the_next_user() {
    // One connection, so the next checkout gets the same one back.
    let (pool, _) = service_pool(1).await;
    let mut conn = pool.pool.acquire().await.expect("checkout");
    let cut = tokio::time::timeout(
        Duration::from_millis(200),
        sqlx::query("SELECT pg_sleep(1)").execute(&mut *conn),
    )
    .await;
    assert!(cut.is_err(), "the query was cut short");
    drop(conn);
    let mut conn = pool.pool.acquire().await.expect("checkout after the cut");
    let answer: i32 = sqlx::query_scalar("SELECT 42")
        .fetch_one(&mut *conn)
        .await
        .expect("a query after the cut");
    assert_eq!(answer, 42);
}

/// Postgres stopped and started again under a running service (a node
/// restart, a failover): once it accepts connections, no request fails on
/// a connection that died with the old server.
#[tokio::test(flavor = "multi_thread")]
async fn after_postgres_restarts_every_request_succeeds_once_it_is_ready() {
    // A fixed host port, so the restarted container is found at the same address.
    let port = free_port();
    let container = postgres_request()
        .with_mapped_port(port, 5432.tcp())
        .start()
        .await
        .expect("start Postgres");
    let url = database_url(port, "postgres");
    kindling::db::migrate(&url).await.expect("migrate");
    let app = spawn_app_on(&url, &[("DATABASE_MAX_CONNECTIONS", "4")]).await;
    let item = app.create_item("outlives the restart").await;
    let path = format!("/api/items/{}", item["id"]);
    // Four requests at once: four pooled connections, all back in the pool.
    let (a, b, c, d) = tokio::join!(
        app.get(&path),
        app.get(&path),
        app.get(&path),
        app.get(&path)
    );
    for res in [a, b, c, d] {
        assert_eq!(res.status(), StatusCode::OK);
    }
    container.stop().await.expect("stop Postgres");
    container.start().await.expect("start Postgres again");
    let deadline = Instant::now() + Duration::from_secs(60);
    while PgConnection::connect(&url).await.is_err() {
        assert!(Instant::now() < deadline, "Postgres did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut failures = Vec::new();
    for i in 0..200 {
        let res = app.get(&path).await;
        if res.status() != StatusCode::OK {
            failures.push((i, res.status()));
        }
    }
    assert!(failures.is_empty(), "failed after readiness: {failures:?}");
}

/// One connection, held by a PUT waiting on a row lock: the next request
/// waits DATABASE_ACQUIRE_TIMEOUT_MS for a connection, then gets 503 with
/// Retry-After, and the pool serves again once the connection is back.
#[tokio::test(flavor = "multi_thread")]
async fn checkouts_beyond_the_maximum_time_out_with_503_and_retry_after() {
    let server = ServerProcess::start(&[
        ("DATABASE_MAX_CONNECTIONS", "1"),
        ("DATABASE_ACQUIRE_TIMEOUT_MS", "300"),
        ("DATABASE_QUERY_TIMEOUT_MS", "10000"),
    ])
    .await;
    let (locker, put) = crate::lifecycle::put_blocked_on_a_row_lock(&server).await;
    let started = Instant::now();
    let res = server.get("/api/items").await;
    let waited = started.elapsed();
    assert!(res.headers().contains_key("retry-after"), "no Retry-After");
    assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "waited {waited:?} for a 503"
    );
    locker.close().await.unwrap();
    assert_eq!(put.await.unwrap().unwrap().status(), StatusCode::OK);
    let res = server.get("/api/items").await;
    assert_eq!(res.status(), StatusCode::OK, "the connection came back");
}
