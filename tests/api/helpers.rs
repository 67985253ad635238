//! Test harness: one Postgres container per test binary, a fresh logical
//! database per test, and the application built by the same
//! `kindling::startup::build_rocket` that `main` uses, served over real HTTP
//! on a free port.
//!
//! The Postgres image defaults to the official `postgres:17-alpine`, the
//! production major; `KINDLING_TEST_POSTGRES_IMAGE=name:tag` overrides it (CI
//! uses a locally built image because no registry is reachable there). The
//! server must be UTF8 like production's: in a `SQL_ASCII` cluster the
//! migrations' `char_length` CHECKs count bytes and `lower()` folds only ASCII,
//! so the tests would not describe production.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kindling::config::Settings;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::runners::SyncRunner;
use testcontainers_modules::testcontainers::{Container, ContainerRequest, ImageExt};

pub const DEFAULT_POSTGRES_IMAGE: &str = "postgres:17-alpine";
/// The major of the image k8s/base pins; another major only warns, so a
/// contributor's own image still runs the suite.
const PRODUCTION_POSTGRES_MAJOR: u32 = 17;
const PG_USER: &str = "postgres";
const PG_PASSWORD: &str = "postgres";

/// The container request every test uses, with the image override applied.
pub fn postgres_request() -> ContainerRequest<Postgres> {
    let image = std::env::var("KINDLING_TEST_POSTGRES_IMAGE")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_IMAGE.to_owned());
    let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
    Postgres::default()
        .with_user(PG_USER)
        .with_password(PG_PASSWORD)
        .with_name(name)
        .with_tag(tag)
        .with_startup_timeout(Duration::from_secs(120))
}

pub fn database_url(port: u16, database: &str) -> String {
    format!("postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/{database}")
}

struct SharedPostgres {
    _container: Container<Postgres>,
    port: u16,
}

static POSTGRES: OnceLock<SharedPostgres> = OnceLock::new();
static CONTAINER_ID: OnceLock<String> = OnceLock::new();

/// Statics are never dropped, so the shared container is removed by an
/// exit handler instead.
extern "C" fn remove_shared_container() {
    if let Some(id) = CONTAINER_ID.get() {
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", "--volumes", id])
            .output();
    }
}

fn shared_postgres_port() -> u16 {
    POSTGRES
        .get_or_init(|| {
            // The sync runner owns its own runtime; start it off the test's runtime.
            std::thread::spawn(|| {
                let container = postgres_request().start().expect(
                    "start Postgres container (is Docker running? see verify/docker-setup.sh)",
                );
                let port = container.get_host_port_ipv4(5432).expect("mapped port");
                CONTAINER_ID.set(container.id().to_owned()).ok();
                // SAFETY: registering a plain extern "C" fn with no captured state.
                unsafe { libc::atexit(remove_shared_container) };
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime for the server check")
                    .block_on(check_server_is_like_production(port))
                    .unwrap_or_else(|problem| {
                        // Exit rather than panic: a panic here would leave the
                        // OnceLock empty and every later test start its own container.
                        writeln!(std::io::stderr(), "{problem}").expect("write to stderr");
                        remove_shared_container();
                        std::process::exit(1);
                    });
                SharedPostgres {
                    _container: container,
                    port,
                }
            })
            .join()
            .expect("container thread")
        })
        .port
}

/// Refuses a server that does not store text as UTF-8 (see the module docs);
/// prints the version and locale once, so a test log says what it ran on.
async fn check_server_is_like_production(port: u16) -> Result<(), String> {
    let mut conn = PgConnection::connect(&database_url(port, "postgres"))
        .await
        .expect("connect to shared Postgres");
    let (encoding, version_num, version, collate, ctype): (String, String, String, String, String) =
        sqlx::query_as(
            "SELECT current_setting('server_encoding'), current_setting('server_version_num'), \
                    current_setting('server_version'), datcollate::text, datctype::text \
             FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&mut conn)
        .await
        .expect("read server settings");
    let major = version_num.parse::<u32>().expect("server_version_num") / 10_000;
    // Straight to stderr, not eprintln!, which the test harness captures.
    let mut report = format!(
        "test Postgres: {version} (major {major}), server_encoding {encoding}, \
         lc_collate {collate}, lc_ctype {ctype}\n"
    );
    if major != PRODUCTION_POSTGRES_MAJOR {
        report += &format!(
            "warning: test Postgres major {major} is not production's {PRODUCTION_POSTGRES_MAJOR}\n"
        );
    }
    std::io::stderr()
        .write_all(report.as_bytes())
        .expect("write to stderr");
    if encoding == "UTF8" {
        Ok(())
    } else {
        Err(format!(
            "test Postgres has server_encoding {encoding}, not UTF8 like production's \
             postgres:17-alpine: length limits would count bytes and lower() fold only ASCII. \
             Use an image whose initdb runs in a UTF-8 locale (CI: verify/docker-setup.sh)."
        ))
    }
}

/// Creates an empty database on the shared server and returns its URL.
pub async fn fresh_database() -> String {
    let port = shared_postgres_port();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&database_url(port, "postgres"))
        .await
        .expect("connect to shared Postgres");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    database_url(port, &name)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Settings as the process would read them from this environment map.
pub fn settings_for(database_url: &str, port: u16, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.into()),
        ("ROCKET_ADDRESS".into(), "127.0.0.1".into()),
        ("ROCKET_PORT".into(), port.to_string()),
        ("SHUTDOWN_GRACE_SECS".into(), "2".into()),
    ]);
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    Settings::from_lookup(|k| env.get(k).cloned()).expect("valid test settings")
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: rocket::Shutdown,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

/// `TEST_LOG=1 cargo test` shows the service's logs: in-process apps log
/// through the test harness's capture (printed for failing tests, or for all
/// with `-- --nocapture`), child processes straight to the terminal.
fn show_logs() -> bool {
    std::env::var("TEST_LOG").is_ok_and(|v| v == "1")
}

fn init_test_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if show_logs() {
        ONCE.call_once(|| {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_env_filter(kindling::config::DEFAULT_LOG_FILTER)
                .with_test_writer()
                .try_init();
        });
    }
}

/// A migrated, running app on its own database.
pub async fn spawn_app() -> TestApp {
    let url = fresh_database().await;
    kindling::db::migrate(&url).await.expect("migrate");
    spawn_app_on(&url, &[]).await
}

/// Runs the app against `database_url` (which may be unreachable) with extra
/// environment settings.
pub async fn spawn_app_on(database_url: &str, extra: &[(&str, &str)]) -> TestApp {
    init_test_logging();
    let port = free_port();
    let settings = settings_for(database_url, port, extra);
    let rocket = kindling::startup::build_rocket(settings)
        .ignite()
        .await
        .expect("ignite");
    let shutdown = rocket.shutdown();
    tokio::spawn(rocket.launch());
    let app = TestApp {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client"),
        shutdown,
    };
    app.wait_for(
        "/api/v1/health/live",
        StatusCode::OK,
        Duration::from_secs(10),
    )
    .await;
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn put_json(&self, path: &str, body: &Value, if_match: Option<&str>) -> Response {
        let mut req = self.client.put(self.url(path)).json(body);
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        req.send().await.expect("PUT")
    }

    pub async fn create_item(&self, name: &str) -> Value {
        let res = self
            .post_json("/api/items", &serde_json::json!({"name": name}))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.expect("item json")
    }

    /// Polls `path` until it answers `status`, or panics after `within`.
    pub async fn wait_for(&self, path: &str, status: StatusCode, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(res) = self.client.get(self.url(path)).send().await
                && res.status() == status
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not answer {status} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Asserts an RFC 9457 problem response with `status`, and returns its body.
pub async fn assert_problem(res: Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status, "unexpected status");
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.expect("problem json");
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "problem lacks {member}: {body}");
    }
    assert_eq!(body["status"], status.as_u16());
    assert!(body["request_id"].is_string());
    body
}

/// `kindling <args>` as a child process with exactly `env` (plus PATH), run
/// from a directory without a `.env` file.
pub fn kindling_command(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .envs(env.iter().copied());
    cmd
}

/// The real binary serving on a free port, as Kubernetes runs it. Killed on drop.
pub struct ServerProcess {
    child: std::process::Child,
    /// Where the child's stdout goes (unless `TEST_LOG=1` shows it).
    stdout_file: Option<std::path::PathBuf>,
    pub base: String,
    pub client: reqwest::Client,
    pub database_url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(path) = &self.stdout_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl ServerProcess {
    /// Migrates a fresh database and starts `kindling serve` on it with `env`.
    pub async fn start(env: &[(&str, &str)]) -> ServerProcess {
        let url = fresh_database().await;
        kindling::db::migrate(&url).await.expect("migrate");
        let port = free_port().to_string();
        let mut all = vec![
            ("DATABASE_URL", url.as_str()),
            ("ROCKET_PORT", port.as_str()),
        ];
        all.extend_from_slice(env);
        let stdout_file = (!show_logs()).then(|| {
            std::env::temp_dir().join(format!("kindling-test-{}.stdout", uuid::Uuid::new_v4()))
        });
        let stdout = match &stdout_file {
            Some(path) => std::fs::File::create(path).expect("stdout file").into(),
            None => std::process::Stdio::inherit(),
        };
        let child = kindling_command(&["serve"], &all)
            .stdout(stdout)
            .spawn()
            .expect("spawn kindling serve");
        let server = ServerProcess {
            child,
            stdout_file,
            database_url: url.clone(),
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server
            .client
            .get(server.url("/health"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// What the process has written to stdout so far (empty with `TEST_LOG=1`,
    /// which sends it to the terminal).
    pub fn stdout(&self) -> String {
        self.stdout_file
            .as_ref()
            .map(|path| std::fs::read_to_string(path).expect("read stdout"))
            .unwrap_or_default()
    }

    pub fn child_is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sigterm(&self) {
        // SAFETY: signalling our own child process.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
    }

    /// The exit code, which must come within `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
