//! sqlseal's daemon seen from outside: Prometheus metrics at `/metrics`
//! and a health check at `/healthz`, over HTTP on the daemon's tokio
//! runtime.
//!
//! Owns: the exposition and the HTTP endpoint. Never: decides anything
//! about backups, or takes input beyond the request path.
//!
//! It owns the exposition (through `prometheus-client`, in the OpenMetrics
//! text format that Prometheus scrapes) and the HTTP endpoint (through
//! `axum`); it must never decide anything about backups: it only observes
//! the scheduler's [`Event`]s and reads its status, and judges health with
//! the scheduler's own rule ([`sqlseal_schedule::stale_reasons`]), so that
//! `/healthz` and `sqlseal status` always agree.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sqlseal_metrics::{Metrics, serve};
//! use sqlseal_schedule::{Scheduler, Settings};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn service(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = Arc::new(Metrics::new());
//! let health = settings.health;
//! let scheduler = Scheduler::new(settings).observed_by(metrics.clone());
//! let status = scheduler.status().expect("built from settings");
//! let listener = sqlseal_metrics::bind("127.0.0.1:9531").await?;
//! let token = CancellationToken::new();
//! tokio::spawn(serve(listener, metrics, status, health, token.clone()));
//! scheduler.run(token).await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sqlseal_schedule::{Event, HealthPolicy, Observer, StatusWriter, Target};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The address cannot be listened on.
    #[error(
        "Metrics.Listen {address}: cannot listen there: {source}; pick a free port or leave Metrics.Listen empty"
    )]
    Bind {
        /// The address as configured.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("metrics endpoint: {0}")]
    Serve(std::io::Error),
}

/// Which database and location a series is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    database: String,
    location: String,
}

impl From<Target<'_>> for Labels {
    fn from(t: Target<'_>) -> Self {
        Labels {
            database: t.database.to_owned(),
            location: t.location.to_owned(),
        }
    }
}

/// A database, a location and how something ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    database: String,
    location: String,
    result: String,
}

/// A database, a location, what was being done and what failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    database: String,
    location: String,
    operation: String,
    kind: String,
}

/// A database, a location and what auto-restore did.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    database: String,
    location: String,
    outcome: String,
}

/// The build's version, as `sqlseal_build_info`'s label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type TimeGauge = Family<Labels, Gauge<f64, AtomicU64>>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 0.1 s to about 55 min.
    Histogram::new(exponential_buckets(0.1, 2.0, 16))
}

fn size_histogram() -> Histogram {
    // 64 KiB to 64 GiB.
    Histogram::new(exponential_buckets(65536.0, 4.0, 11))
}

/// The daemon's metrics: an [`Observer`] of the scheduler that keeps
/// Prometheus series per database and location.
pub struct Metrics {
    registry: Registry,
    last_success: TimeGauge,
    last_attempt: TimeGauge,
    last_attempt_success: Family<Labels, Gauge>,
    backups: Family<ResultLabels, Counter>,
    duration: HistogramFamily,
    size: HistogramFamily,
    kept: Family<Labels, Gauge>,
    drill_last: TimeGauge,
    drill_last_success: Family<Labels, Gauge>,
    drills: Family<ResultLabels, Counter>,
    auto_restores: Family<OutcomeLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

impl Metrics {
    /// Empty series, registered under `sqlseal_*` names.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            last_success: TimeGauge::default(),
            last_attempt: TimeGauge::default(),
            last_attempt_success: Family::default(),
            backups: Family::default(),
            duration: HistogramFamily::new_with_constructor(duration_histogram),
            size: HistogramFamily::new_with_constructor(size_histogram),
            kept: Family::default(),
            drill_last: TimeGauge::default(),
            drill_last_success: Family::default(),
            drills: Family::default(),
            auto_restores: Family::default(),
            errors: Family::default(),
            registry: Registry::default(),
        };
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("sqlseal_build_info", "sqlseal's version", build);
        registry.register(
            "sqlseal_backup_last_success_timestamp_seconds",
            "Creation time of the newest backup that was made and read back, or found verified at start-up (Unix seconds)",
            m.last_success.clone(),
        );
        registry.register(
            "sqlseal_backup_last_attempt_timestamp_seconds",
            "When the last backup attempt started (Unix seconds)",
            m.last_attempt.clone(),
        );
        registry.register(
            "sqlseal_backup_last_attempt_success",
            "1 if the last backup attempt succeeded, 0 if it failed",
            m.last_attempt_success.clone(),
        );
        registry.register(
            "sqlseal_backups",
            "Backup attempts by result: success, failure, or unchanged (the database had not changed since its last backup, so none was needed)",
            m.backups.clone(),
        );
        registry.register(
            "sqlseal_backup_duration_seconds",
            "Time a successful backup took: snapshot, seal, store, read-back and retention",
            m.duration.clone(),
        );
        registry.register(
            "sqlseal_backup_size_bytes",
            "Bytes a successful backup wrote to the store",
            m.size.clone(),
        );
        registry.register(
            "sqlseal_backups_kept",
            "Verified backups kept after the last retention pass",
            m.kept.clone(),
        );
        registry.register(
            "sqlseal_drill_last_timestamp_seconds",
            "When the last restore drill started (Unix seconds)",
            m.drill_last.clone(),
        );
        registry.register(
            "sqlseal_drill_last_success",
            "1 if the last restore drill passed, 0 if it failed",
            m.drill_last_success.clone(),
        );
        registry.register(
            "sqlseal_drills",
            "Restore drills by result (success or failure)",
            m.drills.clone(),
        );
        registry.register(
            "sqlseal_auto_restores",
            "What auto-restore did at start-up, by outcome",
            m.auto_restores.clone(),
        );
        registry.register(
            "sqlseal_errors",
            "Failed backups and drills by operation and kind of error",
            m.errors.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The metrics in the OpenMetrics text format (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn error(&self, target: Target<'_>, operation: &str, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                database: target.database.to_owned(),
                location: target.location.to_owned(),
                operation: operation.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }
}

fn with_result(target: Target<'_>, result: &str) -> ResultLabels {
    ResultLabels {
        database: target.database.to_owned(),
        location: target.location.to_owned(),
        result: result.to_owned(),
    }
}

impl Observer for Metrics {
    fn observe(&self, event: &Event<'_>) {
        match event {
            Event::Scheduled { target, newest, .. } => {
                let labels = Labels::from(*target);
                if let Some(newest) = newest {
                    self.last_success
                        .get_or_create(&labels)
                        .set(seconds(*newest));
                }
                // Each database's series exist from the start, at zero.
                for result in ["success", "failure"] {
                    self.backups
                        .get_or_create(&with_result(*target, result))
                        .inc_by(0);
                }
            }
            Event::BackupSucceeded {
                target,
                started,
                created,
                duration,
                bytes,
                kept,
            } => {
                let labels = Labels::from(*target);
                self.last_success
                    .get_or_create(&labels)
                    .set(seconds(*created));
                self.last_attempt
                    .get_or_create(&labels)
                    .set(seconds(*started));
                self.last_attempt_success.get_or_create(&labels).set(1);
                self.backups
                    .get_or_create(&with_result(*target, "success"))
                    .inc();
                self.duration
                    .get_or_create(&labels)
                    .observe(duration.as_secs_f64());
                self.size.get_or_create(&labels).observe(*bytes as f64);
                self.kept
                    .get_or_create(&labels)
                    .set(i64::try_from(*kept).unwrap_or(i64::MAX));
            }
            Event::BackupFailed {
                target,
                started,
                kind,
                ..
            } => {
                let labels = Labels::from(*target);
                self.last_attempt
                    .get_or_create(&labels)
                    .set(seconds(*started));
                self.last_attempt_success.get_or_create(&labels).set(0);
                self.backups
                    .get_or_create(&with_result(*target, "failure"))
                    .inc();
                self.error(*target, "backup", kind);
            }
            Event::DrillFinished {
                target,
                started,
                failure,
                ..
            } => {
                let labels = Labels::from(*target);
                self.drill_last
                    .get_or_create(&labels)
                    .set(seconds(*started));
                self.drill_last_success
                    .get_or_create(&labels)
                    .set(i64::from(failure.is_none()));
                let result = if failure.is_none() {
                    "success"
                } else {
                    "failure"
                };
                self.drills
                    .get_or_create(&with_result(*target, result))
                    .inc();
                if let Some(kind) = failure {
                    self.error(*target, "drill", kind);
                }
            }
            Event::BackupUnchanged { target, .. } => {
                self.backups
                    .get_or_create(&with_result(*target, "unchanged"))
                    .inc();
            }
            Event::Unscheduled { target } => {
                let labels = Labels::from(*target);
                for family in [&self.last_success, &self.last_attempt, &self.drill_last] {
                    family.remove(&labels);
                }
                for family in [
                    &self.last_attempt_success,
                    &self.kept,
                    &self.drill_last_success,
                ] {
                    family.remove(&labels);
                }
                self.duration.remove(&labels);
                self.size.remove(&labels);
                for result in ["success", "failure", "unchanged"] {
                    self.backups.remove(&with_result(*target, result));
                    self.drills.remove(&with_result(*target, result));
                }
            }
            Event::AutoRestore { target, outcome } => {
                self.auto_restores
                    .get_or_create(&OutcomeLabels {
                        database: target.database.to_owned(),
                        location: target.location.to_owned(),
                        outcome: (*outcome).to_owned(),
                    })
                    .inc();
            }
            _ => {}
        }
    }
}

/// Listens on `address` (`HOST:PORT`; port 0 picks a free one: see
/// [`TcpListener::local_addr`]).
pub async fn bind(address: &str) -> Result<TcpListener, MetricsError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError::Bind {
            address: address.to_owned(),
            source,
        })?;
    if let Ok(address) = listener.local_addr() {
        info!(address = %address, "serving /metrics and /healthz");
    }
    Ok(listener)
}

/// What the endpoint serves from.
struct Served {
    metrics: Arc<Metrics>,
    status: Arc<StatusWriter>,
    health: HealthPolicy,
}

async fn metrics_page(State(served): State<Arc<Served>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        served.metrics.encode(),
    )
}

async fn health_page(State(served): State<Arc<Served>>) -> impl IntoResponse {
    let report = served.status.snapshot();
    let reasons = served.health.stale_now(&report);
    if reasons.is_empty() {
        (
            StatusCode::OK,
            format!("ok: {} database(s) current\n", report.databases.len()),
        )
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, reasons.join("\n") + "\n")
    }
}

/// The endpoint's routes, for a service that serves them from its own
/// axum server: `GET /metrics` and `GET /healthz`.
pub fn router(metrics: Arc<Metrics>, status: Arc<StatusWriter>, health: HealthPolicy) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(health_page))
        .with_state(Arc::new(Served {
            metrics,
            status,
            health,
        }))
}

/// Serves [`router`] on `listener` until `token` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    status: Arc<StatusWriter>,
    health: HealthPolicy,
    token: CancellationToken,
) -> Result<(), MetricsError> {
    axum::serve(listener, router(metrics, status, health))
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await
        .map_err(MetricsError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    const TARGET: Target<'static> = Target {
        database: "app.db",
        location: "/srv/backups/app.db",
    };

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    /// The scrape parsed by a Prometheus text parser: (name, labels) -> value.
    fn scrape(text: &str) -> HashMap<(String, Vec<(String, String)>), f64> {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
        let mut out = HashMap::new();
        for sample in parsed.samples {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            let mut labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            out.insert((sample.metric, labels), value);
        }
        out
    }

    fn labels(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut l: Vec<(String, String)> =
            [("database", "app.db"), ("location", "/srv/backups/app.db")]
                .iter()
                .chain(extra)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        l.sort();
        l
    }

    #[test]
    fn events_become_series_that_a_prometheus_parser_reads() {
        let m = Metrics::new();
        m.observe(&Event::Scheduled {
            target: TARGET,
            newest: Some(at("2026-12-01T00:00:00Z")),
            newest_name: None,
        });
        m.observe(&Event::BackupSucceeded {
            target: TARGET,
            started: at("2026-12-01T01:00:00Z"),
            created: at("2026-12-01T01:00:00.5Z"),
            duration: Duration::from_millis(1500),
            bytes: 1 << 20,
            kept: 3,
        });
        m.observe(&Event::BackupFailed {
            target: TARGET,
            started: at("2026-12-01T02:00:00Z"),
            duration: Duration::from_millis(20),
            kind: "store",
        });
        m.observe(&Event::DrillFinished {
            target: TARGET,
            started: at("2026-12-01T03:00:00Z"),
            duration: Duration::from_secs(2),
            failure: Some("integrity"),
        });
        m.observe(&Event::AutoRestore {
            target: TARGET,
            outcome: "restored",
        });
        let text = m.encode();
        let s = scrape(&text);
        let get = |name: &str, extra: &[(&str, &str)]| {
            *s.get(&(name.to_owned(), labels(extra)))
                .unwrap_or_else(|| panic!("{name} {extra:?} missing from\n{text}"))
        };
        assert_eq!(
            get("sqlseal_backup_last_success_timestamp_seconds", &[]),
            1_796_086_800.5
        );
        assert_eq!(
            get("sqlseal_backup_last_attempt_timestamp_seconds", &[]),
            1_796_090_400.0
        );
        assert_eq!(get("sqlseal_backup_last_attempt_success", &[]), 0.0);
        assert_eq!(get("sqlseal_backups_total", &[("result", "success")]), 1.0);
        assert_eq!(get("sqlseal_backups_total", &[("result", "failure")]), 1.0);
        assert_eq!(get("sqlseal_backups_kept", &[]), 3.0);
        assert_eq!(get("sqlseal_backup_duration_seconds_count", &[]), 1.0);
        assert_eq!(get("sqlseal_backup_duration_seconds_sum", &[]), 1.5);
        assert_eq!(get("sqlseal_backup_size_bytes_sum", &[]), 1_048_576.0);
        assert_eq!(get("sqlseal_drill_last_success", &[]), 0.0);
        assert_eq!(get("sqlseal_drills_total", &[("result", "failure")]), 1.0);
        assert_eq!(
            get(
                "sqlseal_errors_total",
                &[("kind", "store"), ("operation", "backup")]
            ),
            1.0
        );
        assert_eq!(
            get(
                "sqlseal_errors_total",
                &[("kind", "integrity"), ("operation", "drill")]
            ),
            1.0
        );
        assert_eq!(
            get("sqlseal_auto_restores_total", &[("outcome", "restored")]),
            1.0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn healthz_follows_the_status_and_metrics_are_served() {
        let dir = std::env::temp_dir().join(format!("sqlseal-metrics-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let status = Arc::new(StatusWriter::new(
            dir.join("status.json"),
            [(
                "app.db".to_owned(),
                dir.join("app.db"),
                "/srv/backups/app.db".to_owned(),
            )],
        ));
        let metrics = Arc::new(Metrics::new());
        let listener = bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let token = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            metrics.clone(),
            status.clone(),
            HealthPolicy::new(Some(Duration::from_secs(3600)), None),
            token.clone(),
        ));
        let get = move |path: &'static str| {
            tokio::task::spawn_blocking(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut response = agent
                    .get(&format!("http://{address}{path}"))
                    .call()
                    .expect("request");
                let code = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = response.body_mut().read_to_string().expect("body");
                (code, content_type, body)
            })
        };
        status
            .update("app.db", |s| {
                s.last_success = Some(sqlseal_format_time(Timestamp::now()))
            })
            .expect("status");
        let (code, _, body) = get("/healthz").await.expect("join");
        assert_eq!((code, body.as_str()), (200, "ok: 1 database(s) current\n"));

        status
            .update("app.db", |s| {
                s.last_drill_error = Some("chunk 4 does not authenticate".into())
            })
            .expect("status");
        let (code, _, body) = get("/healthz").await.expect("join");
        assert_eq!(code, 503);
        assert!(body.contains("app.db at /srv/backups/app.db: the restore drill of its newest backup failed: chunk 4 does not authenticate"), "{body}");

        let (code, content_type, body) = get("/metrics").await.expect("join");
        assert_eq!(code, 200);
        assert_eq!(content_type, CONTENT_TYPE);
        assert!(body.contains("sqlseal_build_info{version=\""), "{body}");
        let (code, _, _) = get("/nothing").await.expect("join");
        assert_eq!(code, 404);

        token.cancel();
        server.await.expect("join").expect("server stops cleanly");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn sqlseal_format_time(t: Timestamp) -> String {
        t.to_string()
    }
}
