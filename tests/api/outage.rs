//! The database is absent at start, appears, goes away and comes back, and
//! hangs: the service keeps answering, with 503s while Postgres is missing,
//! and recovers by itself.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use testcontainers_modules::testcontainers::ImageExt;
use testcontainers_modules::testcontainers::core::IntoContainerPort;
use testcontainers_modules::testcontainers::runners::AsyncRunner;

use crate::helpers::{
    TestApp, assert_problem, database_url, free_port, postgres_request, spawn_app_on,
};

/// A 503 must come back quickly, with Retry-After, never a hang.
async fn assert_unavailable_fast(app: &TestApp, path: &str) {
    let started = Instant::now();
    let res = app.get(path).await;
    let took = started.elapsed();
    assert!(
        res.headers().contains_key("retry-after"),
        "{path}: no Retry-After"
    );
    assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(took < Duration::from_secs(4), "{path} took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn service_survives_database_absence_outage_and_hang() {
    // A fixed host port, so the restarted container is found at the same address.
    let port = free_port();
    let url = database_url(port, "postgres");
    let app = spawn_app_on(
        &url,
        &[
            ("MIGRATE_ON_START", "true"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "800"),
            ("DATABASE_QUERY_TIMEOUT_MS", "1000"),
        ],
    )
    .await;

    // 1. No database yet: live answers, startup waits for migrations, data is 503.
    assert_eq!(
        app.get("/api/v1/health/live").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/health/startup").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_unavailable_fast(&app, "/api/v1/health/ready").await;
    assert_unavailable_fast(&app, "/api/items").await;
    let report: Value = app.get("/api/v1/health/").await.json().await.unwrap();
    assert_eq!(report["status"], "unhealthy");

    // 2. The database appears: the service migrates and turns ready by itself.
    let container = postgres_request()
        .with_mapped_port(port, 5432.tcp())
        .start()
        .await
        .expect("start outage-test Postgres");
    app.wait_for(
        "/api/v1/health/startup",
        StatusCode::OK,
        Duration::from_secs(60),
    )
    .await;
    app.wait_for(
        "/api/v1/health/ready",
        StatusCode::OK,
        Duration::from_secs(10),
    )
    .await;
    let item = app.create_item("survives restarts").await;
    let path = format!("/api/items/{}", item["id"]);

    // 3. The database stops: readiness and data endpoints answer 503.
    container.stop().await.expect("stop container");
    assert_unavailable_fast(&app, "/api/v1/health/ready").await;
    assert_unavailable_fast(&app, &path).await;
    assert_eq!(
        app.get("/api/v1/health/live").await.status(),
        StatusCode::OK
    );

    // 4. It comes back: same data, no restart of the service.
    container.start().await.expect("restart container");
    app.wait_for(
        "/api/v1/health/ready",
        StatusCode::OK,
        Duration::from_secs(60),
    )
    .await;
    let again: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(again, item);

    // 5. The database hangs (frozen process, open sockets): bounded 503s.
    container.pause().await.expect("pause container");
    assert_unavailable_fast(&app, &path).await;
    assert_unavailable_fast(&app, "/api/v1/health/ready").await;
    container.unpause().await.expect("unpause container");
    app.wait_for(
        "/api/v1/health/ready",
        StatusCode::OK,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(app.get(&path).await.status(), StatusCode::OK);
}
