//! The connection pool (`core/src/db/pool.rs`) against real Postgres: connections
//! come back without a round trip, one cut short mid-query is cleaned before
//! reuse, dead ones are replaced, and the bounds hold.

use std::time::Duration;

use kindling::db::connect_options;
use kindling::db::pool::{PING_IF_IDLE_FOR, PgPool, PoolOptions, PooledConnection};

use crate::helpers::fresh_database;

async fn pool(max_connections: u32, acquire_timeout: Duration) -> PgPool {
    let url = fresh_database().await;
    let connect = connect_options(&url, Duration::from_secs(10)).expect("test URL parses");
    PgPool::new_lazy(
        connect,
        PoolOptions {
            max_connections,
            min_connections: 0,
            acquire_timeout,
            idle_timeout: Duration::from_secs(300),
        },
    )
}

async fn backend_pid(conn: &mut PooledConnection) -> i32 {
    conn.round_trip(async |c| {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(c)
            .await
    })
    .await
    .expect("pg_backend_pid")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_released_connection_is_reused_as_it_is() {
    let pool = pool(4, Duration::from_secs(5)).await;
    assert_eq!(
        pool.size(),
        0,
        "lazy: nothing open before the first checkout"
    );
    let mut conn = pool.acquire().await.expect("checkout");
    let first = backend_pid(&mut conn).await;
    drop(conn);
    assert_eq!((pool.size(), pool.num_idle()), (1, 1));
    let mut conn = pool.acquire().await.expect("second checkout");
    assert_eq!(backend_pid(&mut conn).await, first, "the same connection");
    assert_eq!((pool.size(), pool.num_idle()), (1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_round_trip_cut_short_is_cleaned_before_the_next_user() {
    // One connection, so the next checkout must get the same one back.
    let pool = pool(1, Duration::from_secs(10)).await;
    let mut conn = pool.acquire().await.expect("checkout");
    let pid = backend_pid(&mut conn).await;
    let cut = tokio::time::timeout(
        Duration::from_millis(200),
        conn.round_trip(async |c| sqlx::query("SELECT pg_sleep(1)").execute(c).await),
    )
    .await;
    assert!(cut.is_err(), "the query was cut short");
    drop(conn);
    // The replies of the cut query are still due; the next user must see
    // only its own.
    let mut conn = pool.acquire().await.expect("checkout after the cut");
    let answer: i32 = conn
        .round_trip(async |c| sqlx::query_scalar("SELECT 42").fetch_one(c).await)
        .await
        .expect("a query after the cut");
    assert_eq!(answer, 42);
    assert_eq!(
        backend_pid(&mut conn).await,
        pid,
        "kept: its ping succeeded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_died_while_idle_is_replaced() {
    let pool = pool(2, Duration::from_secs(5)).await;
    let mut conn = pool.acquire().await.expect("checkout");
    let dead = backend_pid(&mut conn).await;
    let mut admin = pool.acquire().await.expect("a second connection");
    let terminated: bool = admin
        .round_trip(async |c| {
            sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(dead)
                .fetch_one(c)
                .await
        })
        .await
        .expect("terminate");
    assert!(terminated);
    drop((conn, admin));
    tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(200)).await;
    // Both idle connections are now due a ping; the dead one fails it.
    let mut a = pool.acquire().await.expect("checkout");
    let mut b = pool.acquire().await.expect("checkout");
    let (pa, pb) = (backend_pid(&mut a).await, backend_pid(&mut b).await);
    assert!(pa != dead && pb != dead, "{pa} {pb} vs dead {dead}");
    assert_eq!(pool.size(), 2, "the dead one is no longer counted");
}

#[tokio::test(flavor = "multi_thread")]
async fn checkouts_beyond_the_maximum_wait_then_time_out() {
    let pool = pool(2, Duration::from_millis(300)).await;
    let a = pool.acquire().await.expect("first");
    let _b = pool.acquire().await.expect("second");
    let third = pool.acquire().await;
    assert!(
        matches!(third, Err(sqlx::Error::PoolTimedOut)),
        "{:?}",
        third.err()
    );
    drop(a);
    pool.acquire()
        .await
        .expect("a returned connection is lent again");
    assert_eq!(pool.size(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pool_lends_nothing() {
    let pool = pool(2, Duration::from_secs(1)).await;
    drop(pool.acquire().await.expect("checkout"));
    pool.close();
    assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolClosed)));
}
