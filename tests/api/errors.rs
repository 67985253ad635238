use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_returns_400() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/api/items"))
        .header("Content-Type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::BAD_REQUEST).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_fields_return_422_with_every_field_named() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), vec!["name"]),
        (json!({"name": 5}), vec!["name"]),
        (json!({"name": "   "}), vec!["name"]),
        (json!({"name": "x".repeat(201)}), vec!["name"]),
        (
            json!({"name": "ok", "description": "d".repeat(2001)}),
            vec!["description"],
        ),
        (json!({"name": "ok", "colour": "red"}), vec!["colour"]),
        (
            json!({"name": 1, "description": [], "extra": true}),
            vec!["name", "description", "extra"],
        ),
        (json!(["not", "an", "object"]), vec!["body"]),
    ];
    for (body, fields) in cases {
        let res = app.post_json("/api/items", &body).await;
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        let errors = problem["errors"].as_object().expect("errors object");
        let mut named: Vec<_> = errors.keys().map(String::as_str).collect();
        named.sort();
        let mut expected = fields.clone();
        expected.sort();
        assert_eq!(named, expected, "body {body}");
    }
    let page: serde_json::Value = app.get("/api/items").await.json().await.unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        0,
        "nothing invalid was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn body_over_the_limit_returns_413() {
    let app = spawn_app().await;
    let huge = json!({"name": "x", "description": "y".repeat(70 * 1024)});
    let res = app.post_json("/api/items", &huge).await;
    assert_problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn non_json_content_type_returns_415() {
    let app = spawn_app().await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let res = app
            .client
            .post(app.url("/api/items"))
            .header("Content-Type", content_type)
            .body("name=x")
            .send()
            .await
            .unwrap();
        assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    }
    let item = app.create_item("x").await;
    let res = app
        .client
        .put(app.url(&format!("/api/items/{}", item["id"])))
        .body("{\"name\": \"y\"}")
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_return_problem_404() {
    let app = spawn_app().await;
    let problem = assert_problem(app.get("/api/nothing-here").await, StatusCode::NOT_FOUND).await;
    assert_eq!(problem["instance"], "/api/nothing-here");
    assert_problem(app.get("/api/items/1/extra").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_methods_on_known_paths_return_405_with_allow() {
    let app = spawn_app().await;
    let res = app
        .client
        .patch(app.url("/api/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, POST");
    assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
    let res = app
        .client
        .post(app.url("/api/items/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "DELETE, GET, PUT");
    assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_ids_return_400() {
    let app = spawn_app().await;
    for path in [
        "/api/items/abc",
        "/api/items/-1",
        "/api/items/0",
        "/api/users/1.5",
    ] {
        assert_problem(app.get(path).await, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_id_is_echoed_when_sane_and_replaced_otherwise() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/items/424242"))
        .header("X-Request-Id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc.123");
    let problem = assert_problem(res, StatusCode::NOT_FOUND).await;
    assert_eq!(problem["request_id"], "trace-abc.123");

    let res = app
        .client
        .get(app.url("/api/v1/health/live"))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let echoed = res.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(echoed.len(), 36, "expected a generated UUID, got {echoed}");
}
