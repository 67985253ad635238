//! What keyset pagination promises while other clients write (see the
//! migrations and the OpenAPI description of `cursor`): a walk returns every
//! row committed before it started exactly once, in id order, and never a row
//! twice. Ids are taken when a row is inserted, not when it commits, so a row
//! whose transaction was still open while the walk read past its id is not
//! seen by that walk; the next walk sees it. Deleting rows, even the one the
//! cursor names, moves nothing: a row deleted before the walk reaches it is
//! simply absent, and every other row still comes once, in order.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::helpers::{TestApp, fresh_database, spawn_app, spawn_app_on};

/// One page at a time through `collection`; `between_pages` runs after each.
async fn walk(
    app: &TestApp,
    collection: &str,
    mut between_pages: impl AsyncFnMut(usize),
) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 1.. {
        let path = match &cursor {
            Some(c) => format!("/api/{collection}?limit=2&cursor={c}"),
            None => format!("/api/{collection}?limit=2"),
        };
        let res = app.get(&path).await;
        assert_eq!(res.status(), StatusCode::OK);
        let page: Value = res.json().await.expect("page json");
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|row| row["id"].as_i64().expect("id")),
        );
        between_pages(page_number).await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen
}

async fn create(app: &TestApp, collection: &str, body: Value) -> i64 {
    let res = app.post_json(&format!("/api/{collection}"), &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id")
}

/// Opens a transaction on `url` that inserts one row and holds it
/// uncommitted; returns the connection (commit with `COMMIT`) and the row's id.
async fn hold_uncommitted_insert(url: &str, insert: &str) -> (PgConnection, i64) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut conn)
        .await
        .expect("BEGIN");
    let id: i64 = sqlx::query_scalar(insert)
        .fetch_one(&mut conn)
        .await
        .expect("insert");
    (conn, id)
}

/// The scenario of the claim, for one collection: rows A, B committed; a
/// transaction takes id N and holds it; the API commits a later row M > N; a
/// walk reads past M; N commits; the walk ends.
async fn walk_during_a_slow_commit(collection: &str, insert: &str, body: impl Fn(u32) -> Value) {
    let url = fresh_database().await;
    kindling::db::migrate(&url).await.expect("migrate");
    let app = spawn_app_on(&url, &[]).await;

    let before = vec![
        create(&app, collection, body(1)).await,
        create(&app, collection, body(2)).await,
    ];
    let (mut slow, held) = hold_uncommitted_insert(&url, insert).await;
    let later = create(&app, collection, body(3)).await;
    assert!(held > before[1] && later > held, "ids are taken at insert");

    let mut slow = Some(&mut slow);
    let seen = walk(&app, collection, async |page| {
        // The second page ended at `later`: the walk has read past `held`.
        if page == 2
            && let Some(conn) = slow.take()
        {
            sqlx::query("COMMIT").execute(conn).await.expect("COMMIT");
        }
    })
    .await;

    // What the API promises: every row committed before the walk, once, in order;
    // no row twice.
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen, "a walk returned a row twice: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "not in id order: {seen:?}"
    );
    for id in &before {
        assert!(
            seen.contains(id),
            "row {id} committed before the walk is missing: {seen:?}"
        );
    }
    // What it does not promise, and the docs say so: the row that committed
    // behind the cursor is not in this walk, but the next walk has it.
    assert_eq!(seen, vec![before[0], before[1], later]);
    let next = walk(&app, collection, async |_| {}).await;
    assert_eq!(next, vec![before[0], before[1], held, later]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_deleted_behind_at_and_ahead_of_the_cursor_leave_the_rest_of_the_walk_intact() {
    let app = spawn_app().await;
    let mut rows = Vec::new();
    for n in 1..=7 {
        rows.push(create(&app, "items", json!({"name": format!("item {n}")})).await);
    }
    // After the first page (rows 0 and 1; the cursor names row 1): delete a
    // row the walk has returned, the cursor's own row, and one ahead of it.
    // After the second page (rows 2 and 4): delete a row it returned and the
    // next one ahead of the cursor.
    let deleted_after_page = |page| match page {
        1 => vec![rows[0], rows[1], rows[3]],
        2 => vec![rows[2], rows[5]],
        _ => vec![],
    };
    let seen = walk(&app, "items", async |page| {
        for id in deleted_after_page(page) {
            let res = app
                .client
                .delete(app.url(&format!("/api/items/{id}")))
                .send()
                .await
                .expect("DELETE");
            assert_eq!(res.status(), StatusCode::NO_CONTENT, "DELETE {id}");
        }
    })
    .await;

    // Each row once, in order: those returned before their deletion, and
    // every row never deleted; the rows deleted ahead of the cursor are absent.
    assert_eq!(seen, vec![rows[0], rows[1], rows[2], rows[4], rows[6]]);
    let next = walk(&app, "items", async |_| {}).await;
    assert_eq!(next, vec![rows[4], rows[6]], "the next walk: what is left");
}

#[tokio::test(flavor = "multi_thread")]
async fn item_committed_behind_the_cursor_is_seen_by_the_next_walk_only() {
    walk_during_a_slow_commit(
        "items",
        "INSERT INTO items (name) VALUES ('slow writer') RETURNING id",
        |n| json!({"name": format!("item {n}")}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_committed_behind_the_cursor_is_seen_by_the_next_walk_only() {
    walk_during_a_slow_commit(
        "users",
        "INSERT INTO users (username, email) VALUES ('slow', 'slow@example.org') RETURNING id",
        |n| json!({"username": format!("user{n}"), "email": format!("u{n}@example.org")}),
    )
    .await;
}
