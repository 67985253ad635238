//! The connection pool behind [`super::Db`]: sqlx Postgres connections,
//! opened on demand, lent to one request at a time, and taken back without a
//! round trip to the server.
//!
//! Why not `sqlx::PgPool`: sqlx (0.8, and still 0.9) pings every connection as
//! it returns to the pool, which cannot be turned off. That is a second round
//! trip for every request, on top of its one query: in alternating runs of
//! GET by id, the same service served 25 % more requests per second and spent
//! 20 % less CPU per request without it (docs/performance.md, step 7).
//!
//! What that ping guarded against, and how this pool covers it:
//!
//! - **A round trip cut short** (the request was dropped, the query timed
//!   out, an I/O or protocol error) can leave unread replies or a
//!   half-written message on the connection. Only [`PooledConnection::round_trip`]
//!   reaches the connection, and it knows whether its round trip ran to the
//!   end without an error. A connection whose last one did not is pinged in the background when
//!   it is released, and closed if the ping fails: what sqlx does for every
//!   connection. One whose round trips all ended is in Postgres'
//!   ReadyForQuery state and goes straight back.
//! - **A server that restarted** while connections sat idle: a connection
//!   idle for longer than [`PING_IF_IDLE_FOR`] is pinged on checkout and, if
//!   dead, closed; the checkout then tries the next one or opens a new one.
//!
//! Bounds: at most `max_connections` are open or lent; a checkout waits at
//! most `acquire_timeout` (then `sqlx::Error::PoolTimedOut`), and one that
//! must open a connection to a server that refuses fails at once with that
//! error rather than retrying until the timeout (the request gets its 503
//! sooner; sqlx's pool retried); connections
//! idle for `idle_timeout` are closed, down to `min_connections`, which a
//! background task also keeps open when the server is reachable.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::Semaphore;

/// A connection back in the pool within this long is lent without a ping:
/// its last round trip ended a moment ago. HikariCP skips its liveness check
/// the same way (`aliveBypassWindowMs`, 500 ms).
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// Bound on the ping of a connection released mid-round-trip.
const RELEASE_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// How many connections, and how long to wait for one.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
}

/// A handle to the pool; clones share it.
#[derive(Clone)]
pub struct PgPool(Arc<Shared>);

struct Shared {
    connect: PgConnectOptions,
    options: PoolOptions,
    /// One permit per connection that may be lent (or opened) at once.
    permits: Semaphore,
    /// Idle connections, the most recently returned last (taken first).
    idle: Mutex<IdleList>,
    /// Connections open: lent, idle, or being pinged.
    open: Arc<AtomicU32>,
}

#[derive(Default)]
struct IdleList {
    conns: Vec<Idle>,
    closed: bool,
}

struct Idle {
    live: Live,
    since: Instant,
}

/// An open connection, counted in `Shared::open` for as long as it exists.
struct Live {
    conn: PgConnection,
    _open: OpenToken,
}

/// One count in `Shared::open`, taken back when dropped.
struct OpenToken(Arc<AtomicU32>);

impl Drop for OpenToken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Live {
    fn new(conn: PgConnection, open: &Arc<AtomicU32>) -> Live {
        open.fetch_add(1, Ordering::Relaxed);
        Live {
            conn,
            _open: OpenToken(open.clone()),
        }
    }

    /// Sends Postgres' Terminate, so the server does not log a broken
    /// connection. Dropping without it is also safe.
    async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl PgPool {
    /// A pool that connects only when first asked for a connection. Must be
    /// called inside a Tokio runtime when `min_connections` > 0 or
    /// `idle_timeout` is to be enforced without traffic (the maintenance task).
    pub fn new_lazy(connect: PgConnectOptions, options: PoolOptions) -> PgPool {
        let shared = Arc::new(Shared {
            permits: Semaphore::new(options.max_connections as usize),
            connect,
            options,
            idle: Mutex::new(IdleList::default()),
            open: Arc::new(AtomicU32::new(0)),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(maintain(Arc::downgrade(&shared)));
        }
        PgPool(shared)
    }

    /// Lends a connection: an idle one if there is one (pinged first if idle
    /// for longer than [`PING_IF_IDLE_FOR`]), else a new one.
    pub async fn acquire(&self) -> Result<PooledConnection, sqlx::Error> {
        tokio::time::timeout(self.0.options.acquire_timeout, self.checkout())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    async fn checkout(&self) -> Result<PooledConnection, sqlx::Error> {
        let permit = self
            .0
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        permit.forget();
        // From here on the permit is returned when `lent` drops, even if this
        // future is dropped half-way.
        let mut lent = PooledConnection {
            live: None,
            settled: true,
            pool: self.0.clone(),
        };
        while let Some(idle) = self.0.take_idle()? {
            let mut live = idle.live;
            if idle.since.elapsed() <= PING_IF_IDLE_FOR || live.conn.ping().await.is_ok() {
                lent.live = Some(live);
                return Ok(lent);
            }
            // Dead, most likely a server restart: drop it, try the next.
        }
        lent.live = Some(Live::new(self.0.connect.connect().await?, &self.0.open));
        Ok(lent)
    }

    /// Connections open: lent, idle, or being checked.
    pub fn size(&self) -> u32 {
        self.0.open.load(Ordering::Relaxed)
    }

    pub fn num_idle(&self) -> usize {
        self.0.lock_idle().conns.len()
    }

    /// Refuses new checkouts and closes the idle connections in the
    /// background. Lent connections are closed when they come back.
    pub fn close(&self) {
        self.0.permits.close();
        let idle = {
            let mut list = self.0.lock_idle();
            list.closed = true;
            std::mem::take(&mut list.conns)
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for idle in idle {
                    idle.live.close().await;
                }
            });
        }
    }
}

impl Shared {
    fn lock_idle(&self) -> MutexGuard<'_, IdleList> {
        // The list is consistent after every operation on it; a panic
        // elsewhere while it was held does not make it wrong.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_idle(&self) -> Result<Option<Idle>, sqlx::Error> {
        let mut list = self.lock_idle();
        if list.closed {
            return Err(sqlx::Error::PoolClosed);
        }
        Ok(list.conns.pop())
    }

    /// Returns a permit, with the connection that held it if that is still
    /// good (`None`: it was never opened, or is dropped, closing it). The
    /// connection goes back first (unless the pool has closed), so a waiter
    /// woken by the permit finds it.
    fn release(&self, live: Option<Live>) {
        if let Some(live) = live {
            let mut list = self.lock_idle();
            if !list.closed {
                list.conns.push(Idle {
                    live,
                    since: Instant::now(),
                });
            }
        }
        self.permits.add_permits(1);
    }
}

/// A connection lent to one user (`Connection<Db>` for a request). Queries
/// run through [`PooledConnection::round_trip`]; dropping it gives the
/// connection back.
pub struct PooledConnection {
    /// `None` only while a checkout is still opening or testing one.
    live: Option<Live>,
    /// The last round trip ran to its end: no replies left to read.
    settled: bool,
    pool: Arc<Shared>,
}

impl PooledConnection {
    /// Runs `f` on the connection and records whether it ran to the end.
    /// Cut short (this future dropped) or ended by an error, the connection
    /// is pinged before anyone else gets it.
    pub async fn round_trip<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let live = self
            .live
            .as_mut()
            .expect("a lent connection keeps its connection until dropped");
        self.settled = false;
        let result = f(&mut live.conn).await;
        // Any error, even one the server reported (a FATAL one ends the
        // session), gets the connection tested before reuse.
        self.settled = result.is_ok();
        result
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        match self.live.take() {
            Some(live) if !self.settled => self.ping_then_release(live),
            live => self.pool.release(live),
        }
    }
}

impl PooledConnection {
    /// For a connection whose last round trip did not end cleanly: pings it
    /// in the background and gives it back only if it answers. The permit
    /// travels with the connection until then, so the pool never has more
    /// than `max_connections` open.
    fn ping_then_release(&self, mut live: Live) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            drop(live);
            self.pool.release(None);
            return;
        };
        let pool = self.pool.clone();
        rt.spawn(async move {
            let answered = tokio::time::timeout(RELEASE_PING_TIMEOUT, live.conn.ping()).await;
            pool.release(matches!(answered, Ok(Ok(()))).then_some(live));
        });
    }
}

/// Every few seconds, while the pool exists: closes connections idle for
/// longer than `idle_timeout` (keeping `min_connections`), and opens
/// connections up to `min_connections` when the server is reachable.
async fn maintain(pool: Weak<Shared>) {
    const EVERY: Duration = Duration::from_secs(5);
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(pool) = pool.upgrade() else { return };
        let PoolOptions {
            min_connections,
            idle_timeout,
            ..
        } = pool.options;
        let expired: Vec<Idle> = {
            let mut list = pool.lock_idle();
            if list.closed {
                return;
            }
            // Oldest first; never below the minimum.
            let open = pool.open.load(Ordering::Relaxed);
            let n = list
                .conns
                .iter()
                .take_while(|i| i.since.elapsed() > idle_timeout)
                .count()
                .min(open.saturating_sub(min_connections) as usize);
            list.conns.drain(..n).collect()
        };
        for idle in expired {
            idle.live.close().await;
        }
        while pool.open.load(Ordering::Relaxed) < min_connections {
            // Holding a permit keeps the total within `max_connections`.
            let Ok(permit) = pool.permits.try_acquire() else {
                break;
            };
            permit.forget();
            match pool.connect.connect().await {
                Ok(conn) => pool.release(Some(Live::new(conn, &pool.open))),
                Err(_) => {
                    pool.release(None);
                    break;
                }
            }
        }
    }
}
