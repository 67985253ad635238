use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn create_and_get_user() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/api/users",
            &json!({"username": "ada_l", "email": "ada@example.org"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["username"], "ada_l");
    assert_eq!(user["email"], "ada@example.org");
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    let fetched: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, user);
    assert_problem(app.get("/api/users/987654").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_username_or_email_returns_409_case_insensitively() {
    let app = spawn_app().await;
    let first = json!({"username": "grace", "email": "grace@example.org"});
    assert_eq!(
        app.post_json("/api/users", &first).await.status(),
        StatusCode::CREATED
    );

    let same_name = json!({"username": "GRACE", "email": "other@example.org"});
    let problem = assert_problem(
        app.post_json("/api/users", &same_name).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(problem["errors"]["username"].is_string());

    let same_email = json!({"username": "hopper", "email": "Grace@Example.org"});
    let problem = assert_problem(
        app.post_json("/api/users", &same_email).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(problem["errors"]["email"].is_string());
    assert!(
        !problem.to_string().contains("duplicate key"),
        "SQL leaked: {problem}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_users_return_422() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"username": "ab", "email": "a@b.org"}), "username"),
        (
            json!({"username": "bad name", "email": "a@b.org"}),
            "username",
        ),
        (
            json!({"username": "valid", "email": "not-an-email"}),
            "email",
        ),
        (json!({"username": "valid"}), "email"),
        (
            json!({"username": "valid", "email": "a@b.org", "admin": true}),
            "admin",
        ),
    ] {
        let problem = assert_problem(
            app.post_json("/api/users", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(problem["errors"][field].is_string(), "{body}: {problem}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_paginate_like_items() {
    let app = spawn_app().await;
    for i in 0..7 {
        let body = json!({"username": format!("user{i}"), "email": format!("u{i}@example.org")});
        assert_eq!(
            app.post_json("/api/users", &body).await.status(),
            StatusCode::CREATED
        );
    }
    let first: Value = app.get("/api/users?limit=4").await.json().await.unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 4);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .get(&format!("/api/users?limit=4&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"].as_array().unwrap().len(), 3);
    assert!(second["next_cursor"].is_null());
    assert_eq!(second["items"][0]["username"], "user4");
}

/// An address of exactly `chars` characters, many of them two-byte "é", that
/// `email_address` accepts: its local-part and DNS-label limits are in bytes
/// (64 and 63, as RFC 5321 counts octets), the API's 254 in characters.
fn multibyte_email(chars: usize) -> String {
    let local = "é".repeat(32);
    let mut domain = "é".repeat(31);
    let mut left = chars - local.chars().count() - 1 - 31 - ".org".len();
    while left > 0 {
        // A label of k ASCII letters plus its dot; never leave a lone dot.
        let mut k = (left - 1).min(63);
        if left - (k + 1) == 1 {
            k -= 1;
        }
        domain.push('.');
        domain.push_str(&"x".repeat(k));
        left -= k + 1;
    }
    let email = format!("{local}@{domain}.org");
    assert_eq!(email.chars().count(), chars);
    email
}

#[tokio::test(flavor = "multi_thread")]
async fn multibyte_emails_are_limited_to_254_characters_not_bytes() {
    let app = spawn_app().await;
    let longest = multibyte_email(254); // 317 bytes
    let res = app
        .post_json(
            "/api/users",
            &json!({"username": "longest", "email": longest}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["email"], longest.as_str(), "stored text differs");

    for (body, field) in [
        (
            json!({"username": "too_long", "email": multibyte_email(255)}),
            "email",
        ),
        // Usernames are ASCII by rule: multi-byte letters are a 422, never a 500.
        (
            json!({"username": "émile", "email": "e@example.org"}),
            "username",
        ),
        (
            json!({"username": "é".repeat(50), "email": "e@example.org"}),
            "username",
        ),
    ] {
        let problem = assert_problem(
            app.post_json("/api/users", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(problem["errors"][field].is_string(), "{problem}");
    }
}

/// `lower()` in the unique index folds non-ASCII letters only in a UTF-8
/// database; SQL_ASCII would let ZOË and zoë be two accounts.
#[tokio::test(flavor = "multi_thread")]
async fn non_ascii_emails_are_unique_case_insensitively() {
    let app = spawn_app().await;
    let first = json!({"username": "zoe", "email": "zoë@exämple.org"});
    assert_eq!(
        app.post_json("/api/users", &first).await.status(),
        StatusCode::CREATED
    );
    let shouted = json!({"username": "zoe2", "email": "ZOË@EXÄMPLE.ORG"});
    let problem = assert_problem(
        app.post_json("/api/users", &shouted).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(problem["errors"]["email"].is_string(), "{problem}");
}
