//! Configuration precedence as the binary applies it (core/src/config.rs): the
//! environment beats `.env`, `.env` fills only what is unset, an empty value
//! means the default, and a malformed `.env` stops the process with status 2
//! naming the line. Each test runs `kindling serve` in a directory of its own
//! with a `.env` file, as a developer would.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{free_port, fresh_database, kindling_command};

/// A scratch directory holding `.env` with `contents`; removed on drop.
struct DotenvDir(PathBuf);

impl DotenvDir {
    fn new(contents: &str) -> DotenvDir {
        let dir = std::env::temp_dir().join(format!("kindling-dotenv-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        std::fs::write(dir.join(".env"), contents).expect("write .env");
        DotenvDir(dir)
    }
}

impl Drop for DotenvDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_in(dir: &Path, env: &[(&str, &str)]) -> Served {
    let child = kindling_command(&["serve"], env)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kindling serve");
    Served(child)
}

/// Waits until `port` answers the live probe; panics if the process exits first.
async fn wait_live(server: &mut Served, port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(res) = client
            .get(format!("http://127.0.0.1:{port}/api/v1/health/live"))
            .send()
            .await
            && res.status() == StatusCode::OK
        {
            return;
        }
        if let Some(status) = server.0.try_wait().expect("try_wait") {
            panic!("kindling exited with {status} before listening on {port}");
        }
        assert!(Instant::now() < deadline, "nothing answered on port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn refused(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread")]
async fn dotenv_supplies_what_the_environment_does_not_set() {
    let port = free_port();
    let dir = DotenvDir::new(&format!(
        "# a developer's .env\nDATABASE_URL=postgres://kindling:secret@127.0.0.1:1/kindling\nROCKET_PORT={port}\n"
    ));
    let mut server = serve_in(&dir.0, &[]);
    wait_live(&mut server, port).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_beats_dotenv() {
    let (from_env, from_file) = (free_port(), free_port());
    let dir = DotenvDir::new(&format!(
        "DATABASE_URL=postgres://kindling:secret@127.0.0.1:1/kindling\nROCKET_PORT={from_file}\n"
    ));
    let port = from_env.to_string();
    let mut server = serve_in(&dir.0, &[("ROCKET_PORT", &port)]);
    wait_live(&mut server, from_env).await;
    assert!(
        refused(from_file).await,
        ".env's ROCKET_PORT overrode the environment"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_environment_value_means_the_default_not_the_dotenv_value() {
    // BODY_LIMIT_BYTES is set but empty (a blank ConfigMap key). .env says 16
    // bytes; the default is 64 KiB. A 1 KiB body shows which one applies.
    let url = fresh_database().await;
    kindling::db::migrate(&url).await.expect("migrate");
    let port = free_port();
    let dir = DotenvDir::new("BODY_LIMIT_BYTES=16\n");
    let port_text = port.to_string();
    let mut server = serve_in(
        &dir.0,
        &[
            ("DATABASE_URL", url.as_str()),
            ("ROCKET_PORT", &port_text),
            ("BODY_LIMIT_BYTES", ""),
        ],
    );
    wait_live(&mut server, port).await;
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(format!("http://127.0.0.1:{port}/api/items"))
            .json(&body)
            .send()
    };
    let res = post(json!({"name": "n", "description": "d".repeat(1000)}))
        .await
        .expect("POST");
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "1 KiB body refused: .env's 16 bytes applied"
    );
    let res = post(json!({"name": "n", "description": "d".repeat(70 * 1024)}))
        .await
        .expect("POST");
    assert_eq!(
        res.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "the 64 KiB default did not apply"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_dotenv_exits_with_status_2_naming_the_line() {
    let dir = DotenvDir::new("ROCKET_PORT=8000\nthis is not an assignment\nRUST_LOG=info\n");
    let output = kindling_command(&["serve"], &[])
        .current_dir(&dir.0)
        .output()
        .expect("run kindling");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(".env"), "does not name .env: {stderr}");
    assert!(
        stderr.contains("this is not an assignment"),
        "does not name the malformed line: {stderr}"
    );
    assert!(output.stdout.is_empty(), "started anyway");
}
