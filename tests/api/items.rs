use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn create_returns_201_with_location_etag_and_the_item() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/api/items",
            &json!({"name": "  Lamp  ", "description": "warm"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(res.headers()["etag"], "\"1\"");
    let item: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/api/items/{}", item["id"]));
    assert_eq!(item["name"], "Lamp");
    assert_eq!(item["description"], "warm");
    assert_eq!(item["version"], 1);
    let created = item["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z'), "not UTC RFC 3339: {created}");

    let fetched = app.get(&location).await;
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.headers()["etag"], "\"1\"");
    assert_eq!(fetched.json::<Value>().await.unwrap(), item);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_update_delete_missing_item_return_404() {
    let app = spawn_app().await;
    assert_problem(app.get("/api/items/999999").await, StatusCode::NOT_FOUND).await;
    let put = app
        .put_json("/api/items/999999", &json!({"name": "x"}), None)
        .await;
    assert_problem(put, StatusCode::NOT_FOUND).await;
    let del = app
        .client
        .delete(app.url("/api/items/999999"))
        .send()
        .await
        .unwrap();
    assert_problem(del, StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn put_replaces_fully_and_increments_version() {
    let app = spawn_app().await;
    let res = app
        .post_json("/api/items", &json!({"name": "a", "description": "old"}))
        .await;
    let item: Value = res.json().await.unwrap();
    let path = format!("/api/items/{}", item["id"]);
    let res = app
        .put_json(&path, &json!({"name": "b"}), Some("\"1\""))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["name"], "b");
    assert_eq!(
        updated["description"],
        Value::Null,
        "description not replaced"
    );
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["created_at"], item["created_at"]);
    assert_ne!(updated["updated_at"], item["updated_at"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn put_with_stale_if_match_returns_412_and_keeps_row() {
    let app = spawn_app().await;
    let item = app.create_item("original").await;
    let path = format!("/api/items/{}", item["id"]);
    app.put_json(&path, &json!({"name": "second"}), Some("\"1\""))
        .await;

    let res = app
        .put_json(&path, &json!({"name": "stale write"}), Some("\"1\""))
        .await;
    let problem = assert_problem(res, StatusCode::PRECONDITION_FAILED).await;
    assert!(problem["detail"].as_str().unwrap().contains("\"2\""));

    let current: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(current["name"], "second");
    assert_eq!(current["version"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_with_same_if_match_only_one_wins() {
    let app = spawn_app().await;
    let item = app.create_item("contended").await;
    let path = format!("/api/items/{}", item["id"]);
    let writers = (0..10).map(|i| {
        let (client, url) = (app.client.clone(), app.url(&path));
        tokio::spawn(async move {
            client
                .put(url)
                .header("If-Match", "\"1\"")
                .json(&json!({"name": format!("writer {i}")}))
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    let mut statuses = Vec::new();
    for w in writers {
        statuses.push(w.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count(),
        9
    );
    let current: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(current["version"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_unconditional_writers_lose_no_update() {
    let app = spawn_app().await;
    let item = app.create_item("counter").await;
    let path = format!("/api/items/{}", item["id"]);
    let writers = (0..12).map(|i| {
        let (client, url) = (app.client.clone(), app.url(&path));
        tokio::spawn(async move {
            let res = client
                .put(url)
                .json(&json!({"name": format!("w{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()["version"]
                .as_i64()
                .unwrap()
        })
    });
    let mut versions = HashSet::new();
    for w in writers {
        versions.insert(w.await.unwrap());
    }
    assert_eq!(
        versions,
        (2..=13).collect::<HashSet<i64>>(),
        "each write got its own version"
    );
    let current: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(current["version"], 13);
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_star_and_list_are_honoured() {
    let app = spawn_app().await;
    let item = app.create_item("x").await;
    let path = format!("/api/items/{}", item["id"]);
    let res = app.put_json(&path, &json!({"name": "y"}), Some("*")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["version"].as_i64(), body["name"].as_str()),
        (Some(2), Some("y"))
    );
    let res = app
        .put_json(&path, &json!({"name": "z"}), Some("\"7\", \"2\""))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"3\"");
    let stored: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(
        (stored["version"].as_i64(), stored["name"].as_str()),
        (Some(3), Some("z"))
    );
    let res = app
        .put_json(&path, &json!({"name": "w"}), Some("W/\"3\""))
        .await;
    assert_problem(res, StatusCode::PRECONDITION_FAILED).await;
    let res = app.put_json(&path, &json!({"name": "w"}), Some("3")).await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_returns_204_then_404() {
    let app = spawn_app().await;
    let item = app.create_item("doomed").await;
    let path = format!("/api/items/{}", item["id"]);
    let res = app.client.delete(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(&path).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pagination_walk_returns_every_row_exactly_once() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..23 {
        created.push(
            app.create_item(&format!("item {i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/items?limit=5&cursor={c}"),
            None => "/api/items?limit=5".to_owned(),
        };
        let page: Value = app.get(&path).await.json().await.unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 5);
        seen.extend(items.iter().map(|i| i["id"].as_i64().unwrap()));
        // A row inserted mid-walk lands after the cursor and is still seen once.
        if pages == 2 {
            created.push(
                app.create_item("late arrival").await["id"]
                    .as_i64()
                    .unwrap(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen, created,
        "walk must return every row once, in id order"
    );
    assert_eq!(pages, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_defaults_to_50_and_rejects_out_of_range_limits() {
    let app = spawn_app().await;
    for i in 0..51 {
        app.create_item(&format!("n{i}")).await;
    }
    let page: Value = app.get("/api/items").await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
    assert!(page["next_cursor"].is_string());
    let page: Value = app.get("/api/items?limit=200").await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 51);
    assert!(page["next_cursor"].is_null());
    for bad in [
        "limit=201",
        "limit=0",
        "limit=abc",
        "cursor=garbage",
        "limit=5&limit=6",
    ] {
        let res = app.get(&format!("/api/items?{bad}")).await;
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        let field = bad.split('=').next().unwrap();
        assert!(problem["errors"][field].is_string(), "{bad}: {problem}");
    }
}

/// The limits count characters, in the API and in the database's CHECKs alike:
/// 200 two-byte "é" (400 bytes) are a valid name, one more is a 422, and no
/// length is ever a 500. A SQL_ASCII test database counted bytes here.
#[tokio::test(flavor = "multi_thread")]
async fn multibyte_names_and_descriptions_are_limited_by_characters() {
    let app = spawn_app().await;
    for (name, description) in [
        ("é".repeat(200), None),
        ("😀".repeat(200), None), // four bytes each
        ("n".into(), Some("é".repeat(2000))),
    ] {
        let body = json!({"name": name, "description": description});
        let res = app.post_json("/api/items", &body).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{name:.20}…");
        let item: Value = res.json().await.unwrap();
        assert_eq!(item["name"], name.as_str(), "stored text differs");
        assert_eq!(item["description"], json!(description));

        let put = app
            .put_json(&format!("/api/items/{}", item["id"]), &body, None)
            .await;
        assert_eq!(put.status(), StatusCode::OK, "PUT {name:.20}…");
    }
    for (body, field) in [
        (json!({"name": "é".repeat(201)}), "name"),
        (json!({"name": "😀".repeat(201)}), "name"),
        (
            json!({"name": "n", "description": "é".repeat(2001)}),
            "description",
        ),
    ] {
        let problem = assert_problem(
            app.post_json("/api/items", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(problem["errors"][field].is_string(), "{problem}");
    }
}
