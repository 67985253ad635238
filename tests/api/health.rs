use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_problem, fresh_database, spawn_app, spawn_app_on};

#[tokio::test(flavor = "multi_thread")]
async fn probes_and_aliases_pass_on_a_migrated_database() {
    let app = spawn_app().await;
    app.wait_for(
        "/api/v1/health/startup",
        StatusCode::OK,
        Duration::from_secs(5),
    )
    .await;
    for path in [
        "/api/v1/health/live",
        "/health",
        "/api/v1/health/ready",
        "/db-check",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");
    }
    for path in ["/api/v1/health/", "/api/v1/health"] {
        let report: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(report["status"], "healthy", "{path}: {report}");
        for check in ["database", "migrations", "startup"] {
            assert_eq!(report["checks"][check]["status"], "up");
            assert!(report["checks"][check]["latency_ms"].is_number());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_fails_until_the_schema_is_migrated() {
    let url = fresh_database().await;
    let app = spawn_app_on(&url, &[]).await;
    let problem = assert_problem(
        app.get("/api/v1/health/ready").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(problem["checks"]["migrations"]["status"], "down");
    assert_eq!(problem["checks"]["database"]["status"], "up");
    let report: Value = app.get("/api/v1/health/").await.json().await.unwrap();
    assert_eq!(report["status"], "degraded");

    kindling::db::migrate(&url).await.unwrap();
    app.wait_for(
        "/api/v1/health/ready",
        StatusCode::OK,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_on_start_migrates_then_reports_started_and_ready() {
    let url = fresh_database().await;
    let app = spawn_app_on(&url, &[("MIGRATE_ON_START", "true")]).await;
    app.wait_for(
        "/api/v1/health/startup",
        StatusCode::OK,
        Duration::from_secs(20),
    )
    .await;
    app.wait_for(
        "/api/v1/health/ready",
        StatusCode::OK,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(app.create_item("after auto-migrate").await["version"], 1);
}
