//! `sqlseal run`, `sqlseal config check|show`, `sqlseal status`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use sqlseal_metrics::Metrics;
use sqlseal_params::{Loaded, LogFormat, Params};
use sqlseal_schedule::{
    DatabaseStatus, Scheduler, Settings, StatusReport, auto_restore_settings, lock_databases,
    read_status,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long a stop may take before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_millis(4500);

/// Loads parameters: defaults, then the config file (with `${VAR}`
/// expanded from the environment when `expand`), then `SQLSEAL_*` variables.
pub fn load(config: Option<&Path>, expand: bool) -> anyhow::Result<Loaded> {
    let text = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("config file {}: cannot read it", path.display()))?;
            Some(if expand {
                sqlseal_params::expand_env(&text, sqlseal_params::process_env)
                    .with_context(|| format!("config file {}", path.display()))?
            } else {
                text
            })
        }
        None => None,
    };
    let loaded = Params::load(text.as_deref(), sqlseal_params::process_env);
    match (loaded, config) {
        (Ok(loaded), _) => Ok(loaded),
        (Err(e), Some(path)) => {
            Err(anyhow::Error::new(e).context(format!("config file {}", path.display())))
        }
        (Err(e), None) => Err(e.into()),
    }
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SQLSEAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        );
    // A second initialisation (tests in one process) is harmless.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// `sqlseal config check`: everything `run` checks at start-up, without running.
pub fn check(config: &Path, json: bool, expand: bool) -> anyhow::Result<()> {
    let loaded = load(Some(config), expand)?;
    let settings = Settings::from_params(&loaded.params)?;
    for w in &settings.warnings {
        eprintln!("warning: {w}");
    }
    // One entry per database (settings hold one per database and location).
    let mut paths: Vec<&Path> = Vec::new();
    for d in &settings.databases {
        if !paths.contains(&d.path.as_path()) {
            paths.push(&d.path);
        }
    }
    if json {
        #[derive(Serialize)]
        struct Checked<'a> {
            ok: bool,
            databases: Vec<&'a Path>,
            /// The first `Backup.Location` (kept for scripts written before
            /// it took a list).
            location: String,
            /// Every `Backup.Location`, in order.
            locations: Vec<String>,
            /// `Backup.Frequency` as written; `None` when scheduling is off.
            frequency: Option<String>,
            max_count: u64,
            warnings: &'a [String],
        }
        let checked = Checked {
            ok: true,
            databases: paths.clone(),
            location: settings.locations[0].to_string(),
            locations: settings.locations.iter().map(ToString::to_string).collect(),
            frequency: settings
                .frequency
                .map(|_| loaded.params.backup.frequency.to_string()),
            max_count: settings.max_count,
            warnings: &settings.warnings,
        };
        println!("{}", serde_json::to_string_pretty(&checked)?);
        return Ok(());
    }
    let frequency = match settings.frequency {
        Some(_) => format!("every {}", loaded.params.backup.frequency),
        None => "never (Backup.Frequency is 0)".into(),
    };
    let mut extras = String::new();
    if settings.verify_frequency.is_some() {
        extras.push_str(&format!(
            ", restore drills every {}",
            loaded.params.backup.verify_frequency
        ));
    }
    if let Some(listen) = &settings.metrics_listen {
        extras.push_str(&format!(", metrics and health on http://{listen}"));
    }
    println!(
        "ok: {} database(s), backups to {} {frequency}, keeping {}{extras}",
        paths.len(),
        settings
            .locations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        retention_summary(&settings.retention)
    );
    Ok(())
}

/// `sqlseal config show`: the effective values and where each came from.
pub fn show(config: Option<&Path>, json: bool, expand: bool) -> anyhow::Result<()> {
    let loaded = load(config, expand)?;
    if json {
        #[derive(Serialize)]
        struct Shown {
            name: &'static str,
            env: &'static str,
            source: String,
            value: String,
        }
        let shown: Vec<Shown> = loaded
            .entries()
            .map(|e| Shown {
                name: e.param.name(),
                env: e.param.env(),
                source: e.source.to_string(),
                value: e.value,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    let width = loaded
        .entries()
        .map(|e| e.param.name().len())
        .max()
        .unwrap_or(0);
    for entry in loaded.entries() {
        println!(
            "{:<width$}  {:<8} {}",
            entry.param.name(),
            entry.source.to_string(),
            entry.value
        );
    }
    Ok(())
}

/// `sqlseal status`: the status file the daemon writes, and whether each
/// database is current by the rule `/healthz` applies.
pub fn status(config: &Path, json: bool, expand: bool) -> anyhow::Result<()> {
    let params = load(Some(config), expand)?.params;
    let path = sqlseal_schedule::status_file(&params)?;
    if !path.exists() {
        bail!(
            "status file {} does not exist yet; it is written after the daemon's first backup attempt",
            path.display()
        );
    }
    let report = read_status(&path)?;
    let policy = sqlseal_schedule::health_policy(&params);
    let stale = policy.stale_now(&report);
    if json {
        #[derive(Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            report: &'a StatusReport,
            /// No database is stale.
            healthy: bool,
            /// One line per stale database, as `/healthz` says it.
            stale: &'a [String],
        }
        let shown = Shown {
            report: &report,
            healthy: stale.is_empty(),
            stale: &stale,
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    println!(
        "status of {} (daemon started {}, updated {})",
        path.display(),
        or_dash(Some(&report.started).filter(|s| !s.is_empty())),
        report.updated
    );
    for d in &report.databases {
        print_database(d);
    }
    if stale.is_empty() {
        println!("health: ok");
    } else {
        println!("health: STALE");
        for reason in &stale {
            println!("  {reason}");
        }
    }
    Ok(())
}

fn or_dash(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "-".into())
}

fn print_database(d: &DatabaseStatus) {
    println!("{} ({}) -> {}", d.database, d.path.display(), d.location);
    let mut success = or_dash(d.last_success.as_ref());
    if let Some(name) = &d.last_backup {
        success.push_str(&format!("  {name}"));
    }
    if let (Some(ms), Some(size)) = (d.last_duration_ms, d.last_size) {
        success.push_str(&format!(
            " ({:.1} s, {:.1} MiB)",
            ms as f64 / 1000.0,
            size as f64 / (1024.0 * 1024.0)
        ));
    }
    println!("  last success: {success}");
    let result = match (&d.last_attempt, &d.last_error) {
        (None, _) => "-".to_owned(),
        (Some(t), None) => format!("{t}  ok"),
        (Some(t), Some(e)) => format!("{t}  FAILED: {e}"),
    };
    println!("  last attempt: {result}");
    println!("  next due:     {}", or_dash(d.next_due.as_ref()));
    println!(
        "  backups:      {}",
        d.backup_count.map_or_else(|| "-".into(), |n| n.to_string())
    );
    if d.last_drill.is_some() || d.next_drill.is_some() {
        let drill = match (&d.last_drill, &d.last_drill_error) {
            (None, _) => "-".to_owned(),
            (Some(t), Some(e)) => format!("{t}  FAILED: {e}"),
            (Some(t), None) => format!(
                "{t}  ok: {} ({})",
                or_dash(d.last_drill_backup.as_ref()),
                or_dash(d.last_drill_check.as_ref())
            ),
        };
        println!("  last drill:   {drill}");
        println!("  next drill:   {}", or_dash(d.next_drill.as_ref()));
    }
    if let Some(restore) = &d.auto_restore {
        println!("  auto-restore: {restore}");
    }
    if let Some(older) = &d.restored_older {
        println!("  WARNING:      {older}");
    }
}

/// `sqlseal run`: auto-restore, then scheduled backups (and drills, and
/// the metrics endpoint) until SIGTERM or SIGINT.
pub fn run(config: &Path, log_format: Option<&str>, expand: bool) -> anyhow::Result<()> {
    let loaded = load(Some(config), expand)?;
    // clap lets only the choices of Log.Format through.
    let format = match log_format {
        Some(text) => text.parse()?,
        None => loaded.params.log.format,
    };
    init_logging(format);
    let settings = Settings::from_params(&loaded.params)?;
    for w in &settings.warnings {
        warn!("{w}");
    }
    // One lock file stays open per database and location, beside the
    // databases, status and store files in use: the usual soft limit of
    // 1,024 open files does not hold a host of tenants. Raise it to the
    // hard limit (what the administrator allows).
    let wanted = 64 * settings.databases.len() as u64 + 1024;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit < 2 * settings.databases.len() as u64 + 64 => warn!(
            limit,
            databases = settings.databases.len(),
            "the open-file limit is low for this many databases; raise it (LimitNOFILE= in the systemd unit, ulimit -n)"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "could not raise the open-file limit"),
    }
    // Before anything else touches a database: a second daemon (or a
    // one-shot backup) on the same databases and location stops here.
    // Held until the scheduler stops, released by the kernel if we die.
    let locks = lock_databases(&settings)?;
    // Before the scheduler starts, so the service never sees an empty
    // database while a good backup exists.
    // auto_restore_settings logs each outcome itself, once.
    let restored = auto_restore_settings(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sqlseal")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let token = CancellationToken::new();
        // Listening before "started" is logged and READY is sent.
        let signals = tokio::spawn(stop_on_signal(token.clone()));
        info!(
            databases = settings.databases.len(),
            locations = settings.locations.len(),
            "sqlseal daemon started"
        );
        let listener = match &settings.metrics_listen {
            Some(address) => Some(sqlseal_metrics::bind(address).await?),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let health = settings.health;
        let scheduler = Scheduler::new(settings)
            .holding(locks)
            .observed_by(metrics.clone());
        scheduler.note_auto_restore(&restored);
        let endpoint = match (listener, scheduler.status()) {
            (Some(listener), Some(status)) => Some(tokio::spawn(sqlseal_metrics::serve(
                listener,
                metrics,
                status,
                health,
                token.clone(),
            ))),
            _ => None,
        };
        let scheduler = scheduler.spawn(token.clone());
        // For systemd's Type=notify: started means databases restored (or
        // present), locks held and the metrics endpoint listening. Outside
        // systemd (no NOTIFY_SOCKET) this does nothing.
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            warn!(error = %e, "could not tell the service manager that sqlseal is ready");
        }
        tokio::pin!(scheduler);
        let result = tokio::select! {
            r = &mut scheduler => r,
            () = token.cancelled() => match tokio::time::timeout(STOP_GRACE, &mut scheduler).await {
                Ok(r) => r,
                Err(_) => {
                    warn!("backups did not stop within the grace period; exiting");
                    Ok(Ok(()))
                }
            },
        };
        signals.abort();
        token.cancel();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        if let Some(endpoint) = endpoint {
            match tokio::time::timeout(Duration::from_millis(500), endpoint).await {
                Ok(Ok(Err(e))) => warn!(error = %e, "metrics endpoint failed"),
                Ok(_) => {}
                Err(_) => warn!("metrics endpoint did not stop in time; exiting"),
            }
        }
        result.context("scheduler task")??;
        info!("sqlseal daemon stopped");
        anyhow::Ok(())
    })
}

/// Cancels `token` on SIGTERM or SIGINT. The handlers are installed when
/// this is called, not when the returned future first runs: a signal that
/// arrives right after start-up (even before the task is scheduled) is a
/// clean stop, never the default kill. Must be called within the runtime.
fn stop_on_signal(token: CancellationToken) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut interrupt)) => tokio::select! {
                _ = term.recv() => info!("SIGTERM: stopping"),
                _ = interrupt.recv() => info!("SIGINT: stopping"),
            },
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot listen for SIGTERM and SIGINT");
                return;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        token.cancel();
    }
}

/// How a retention policy reads in `config check`: "all", "the newest 10",
/// or "the newest 10, 7 daily, 4 weekly".
fn retention_summary(policy: &sqlseal_schedule::RetentionPolicy) -> String {
    if policy.keeps_all() {
        return "all".into();
    }
    let newest = policy.max_count.max(policy.keep_last);
    let mut parts = Vec::new();
    if newest > 0 {
        parts.push(format!("the newest {newest}"));
    }
    for (n, what) in [
        (policy.keep_hourly, "hourly"),
        (policy.keep_daily, "daily"),
        (policy.keep_weekly, "weekly"),
        (policy.keep_monthly, "monthly"),
        (policy.keep_yearly, "yearly"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(", ")
}
