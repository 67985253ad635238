//! The dev loop's reload event: after Tilt swaps in a newly compiled dev
//! binary, the new process logs one `dev reload` line (target
//! `kindling::dev`) with the build's figures, so the dashboards can mark
//! every edit and chart how long it took to go live.
//!
//! The figures come from the dev loop's scripts, never from the service
//! itself: `tilt/stage-binary.sh` writes them to `.dev-bin/dev-reload.env`,
//! Tilt syncs that file into the pod beside the binary, and
//! `tilt/dev-entrypoint.sh` hands it to the restarted process through
//! [`FILE_ENV`] (once: it moves the file away first, so a later crash and
//! restart does not report the same edit again). The file holds `key=value`
//! lines:
//!
//! ```text
//! build_id=3f2a9c1d0b7e            the staged binary's content hash (prefix)
//! build_started_unix_ms=1764931083123
//! compile_ms=812                   build start to staging start
//! stage_ms=47                      the load check and staging
//! ```
//!
//! Edit-to-live is measured here, from the build's start to the moment the
//! caller reports the server ready. Both clocks are the same machine's on
//! Linux (kind and minikube's docker driver share the host's kernel); a VM
//! whose clock runs behind the host's would show the skew, and a negative
//! difference is logged as 0.
//!
//! Without [`FILE_ENV`] (production, tests, `cargo run`) nothing is logged.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Names the file holding the figures of the build now running.
pub const FILE_ENV: &str = "KINDLING_DEV_RELOAD_FILE";

/// Where the log line goes: apart from the service's own targets, so a
/// query can select reloads without parsing every line.
pub const TARGET: &str = "kindling::dev";

/// The figures of one dev build, as the dev loop's scripts handed them over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    pub build_id: String,
    pub build_started: SystemTime,
    pub compile_ms: u64,
    pub stage_ms: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReloadError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("line {line}: expected key=value")]
    NotKeyValue { line: usize },
    #[error("{key} is missing")]
    Missing { key: &'static str },
    #[error("{key}={value} is not a whole number of milliseconds")]
    NotMilliseconds { key: &'static str, value: String },
    #[error("build_id {0:?} is not 1-64 characters of [A-Za-z0-9._-]")]
    BadBuildId(String),
}

impl Reload {
    /// Parses the file's text. Unknown keys are ignored, so the scripts can
    /// hand over more than this version reads.
    pub fn parse(text: &str) -> Result<Reload, ReloadError> {
        let (mut build_id, mut started, mut compile, mut stage) = (None, None, None, None);
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or(ReloadError::NotKeyValue { line: index + 1 })?;
            let value = value.trim();
            match key.trim() {
                "build_id" => build_id = Some(value),
                "build_started_unix_ms" => started = Some(value),
                "compile_ms" => compile = Some(value),
                "stage_ms" => stage = Some(value),
                _ => {}
            }
        }
        let build_id = build_id.ok_or(ReloadError::Missing { key: "build_id" })?;
        // It ends up in a log line and a Grafana annotation: keep it plain.
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if build_id.is_empty() || build_id.len() > 64 || !build_id.chars().all(plain) {
            return Err(ReloadError::BadBuildId(build_id.to_owned()));
        }
        let started = millis("build_started_unix_ms", started)?;
        Ok(Reload {
            build_id: build_id.to_owned(),
            build_started: UNIX_EPOCH + Duration::from_millis(started),
            compile_ms: millis("compile_ms", compile)?,
            stage_ms: millis("stage_ms", stage)?,
        })
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Reload, ReloadError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReloadError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Reload::parse(&text)
    }

    /// From the build's start to `ready`, in whole milliseconds; 0 when the
    /// clocks disagree so much that `ready` comes first.
    pub fn edit_to_live_ms(&self, ready: SystemTime) -> u64 {
        ready
            .duration_since(self.build_started)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

fn millis(key: &'static str, value: Option<&str>) -> Result<u64, ReloadError> {
    let value = value.ok_or(ReloadError::Missing { key })?;
    value.parse().map_err(|_| ReloadError::NotMilliseconds {
        key,
        value: value.to_owned(),
    })
}

/// The figures handed to this process, if any: `Ok(None)` when [`FILE_ENV`]
/// is unset or empty.
pub fn handed_over(file_env: Option<std::ffi::OsString>) -> Result<Option<Reload>, ReloadError> {
    match file_env {
        Some(path) if !path.is_empty() => Reload::read(Path::new(&path)).map(Some),
        _ => Ok(None),
    }
}

/// Logs the `dev reload` line when the dev loop handed figures over; call it
/// once the server is ready. A file that is there but unreadable or malformed
/// is a broken dev loop, worth a warning rather than silence.
pub fn log_reload_if_any() {
    match handed_over(std::env::var_os(FILE_ENV)) {
        Ok(Some(reload)) => log_reload(&reload, SystemTime::now()),
        Ok(None) => {}
        Err(error) => tracing::warn!(target: TARGET, %error, "dev reload figures ignored"),
    }
}

fn log_reload(reload: &Reload, ready: SystemTime) {
    tracing::info!(
        target: TARGET,
        build_id = %reload.build_id,
        compile_ms = reload.compile_ms,
        stage_ms = reload.stage_ms,
        edit_to_live_ms = reload.edit_to_live_ms(ready),
        "dev reload"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;

    const FIGURES: &str = "build_id=3f2a9c1d0b7e\n\
                           build_started_unix_ms=1764931083123\n\
                           compile_ms=812\n\
                           stage_ms=47\n";

    fn at_ms(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn parses_the_figures_stage_binary_writes() {
        let reload = Reload::parse(FIGURES).unwrap();
        assert_eq!(reload.build_id, "3f2a9c1d0b7e");
        assert_eq!(reload.build_started, at_ms(1_764_931_083_123));
        assert_eq!((reload.compile_ms, reload.stage_ms), (812, 47));
    }

    #[test]
    fn ignores_comments_blank_lines_and_keys_it_does_not_know() {
        let text = format!("# written by tilt/stage-binary.sh\n\nlink=dynamic\n{FIGURES}");
        assert_eq!(Reload::parse(&text), Reload::parse(FIGURES));
    }

    #[test]
    fn refuses_a_missing_figure_a_bad_number_and_an_odd_build_id() {
        let without_stage = FIGURES.replace("stage_ms=47\n", "");
        assert_eq!(
            Reload::parse(&without_stage),
            Err(ReloadError::Missing { key: "stage_ms" })
        );
        let negative = FIGURES.replace("compile_ms=812", "compile_ms=-812");
        assert_eq!(
            Reload::parse(&negative),
            Err(ReloadError::NotMilliseconds {
                key: "compile_ms",
                value: "-812".into()
            })
        );
        let quoted = FIGURES.replace("build_id=3f2a9c1d0b7e", "build_id=\"x\" y");
        assert!(matches!(
            Reload::parse(&quoted),
            Err(ReloadError::BadBuildId(_))
        ));
        assert_eq!(
            Reload::parse("build_id 3f2a"),
            Err(ReloadError::NotKeyValue { line: 1 })
        );
    }

    #[test]
    fn edit_to_live_runs_from_the_build_start_to_ready() {
        let reload = Reload::parse(FIGURES).unwrap();
        assert_eq!(reload.edit_to_live_ms(at_ms(1_764_931_084_230)), 1107);
        // A clock behind the build host's: not a negative duration.
        assert_eq!(reload.edit_to_live_ms(at_ms(1_764_931_083_000)), 0);
    }

    #[test]
    fn nothing_is_handed_over_without_the_variable() {
        assert_eq!(handed_over(None), Ok(None));
        assert_eq!(handed_over(Some("".into())), Ok(None));
    }

    #[test]
    fn a_named_file_is_read_and_a_missing_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("kindling-dev-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dev-reload.env");
        std::fs::write(&file, FIGURES).unwrap();
        let read = handed_over(Some(file.clone().into_os_string()));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read, Ok(Some(Reload::parse(FIGURES).unwrap())));
        assert!(matches!(
            handed_over(Some(file.into_os_string())),
            Err(ReloadError::Unreadable { .. })
        ));
    }

    /// One event: its target, and its fields as text.
    type Event = (String, BTreeMap<String, String>);

    /// Every event logged while it is the subscriber.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<Event>>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0.insert(field.name().to_owned(), value.to_string());
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorded {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            let target = event.metadata().target().to_owned();
            self.0.lock().unwrap().push((target, fields));
        }
    }

    #[test]
    fn the_line_carries_the_figures_as_numbers_under_its_own_target() {
        let recorded = Recorded::default();
        let subscriber = tracing_subscriber::registry().with(recorded.clone());
        let reload = Reload::parse(FIGURES).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            log_reload(&reload, at_ms(1_764_931_084_500));
        });
        let events = recorded.0.lock().unwrap();
        let [(target, fields)] = events.as_slice() else {
            panic!("expected one event, got {}", events.len());
        };
        assert_eq!(target, TARGET);
        let want: BTreeMap<String, String> = [
            ("message", "dev reload"),
            ("build_id", "3f2a9c1d0b7e"),
            ("compile_ms", "812"),
            ("stage_ms", "47"),
            ("edit_to_live_ms", "1377"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(fields, &want);
    }
}
