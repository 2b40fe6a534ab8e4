//! Whether each database's backups are current: the one rule that
//! `/healthz` and `sqlseal status` both apply to the status facts.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::now_string;
use crate::status::{DatabaseStatus, StatusReport};

/// When a database counts as stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthPolicy {
    /// A database whose last successful backup (or, before the first one,
    /// the daemon's start) is older than this is stale. `None`: age alone
    /// never makes a database stale (scheduling off).
    pub max_age: Option<Duration>,
}

impl HealthPolicy {
    /// `Metrics.MaxAge`, or twice `Backup.Frequency` when it is zero.
    pub fn new(max_age: Option<Duration>, frequency: Option<Duration>) -> Self {
        HealthPolicy {
            max_age: max_age.or_else(|| frequency.and_then(|f| f.checked_mul(2))),
        }
    }

    /// [`stale_reasons`] at the current time.
    pub fn stale_now(&self, report: &StatusReport) -> Vec<String> {
        stale_reasons(report, self, Timestamp::now())
    }
}

fn parse(t: &Option<String>) -> Option<Timestamp> {
    t.as_deref().and_then(|t| t.parse().ok())
}

fn ago(now: Timestamp, then: Timestamp) -> String {
    let secs = now.duration_since(then).as_secs().max(0);
    format!("{:#}", SignedDuration::from_secs(secs))
}

fn stale_reason(
    d: &DatabaseStatus,
    started: Option<Timestamp>,
    policy: &HealthPolicy,
    now: Timestamp,
) -> Option<String> {
    let who = format!("database {} at {}", d.database, d.location);
    if let Some(error) = &d.last_drill_error {
        return Some(format!(
            "{who}: the restore drill of {} failed: {error}",
            d.last_drill_backup
                .as_deref()
                .unwrap_or("its newest backup")
        ));
    }
    let max_age = policy.max_age?;
    let max = format!(
        "{:#}",
        SignedDuration::try_from(max_age).unwrap_or(SignedDuration::MAX)
    );
    let last_error = d
        .last_error
        .as_deref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default();
    // A database found unchanged since its last backup is as current as
    // that check.
    let current = match (parse(&d.last_success), parse(&d.unchanged_at)) {
        (Some(s), Some(u)) => Some(s.max(u)),
        (s, None) => s,
        (None, u) => u,
    };
    match current {
        Some(success)
            if now.duration_since(success) > SignedDuration::try_from(max_age).ok()? =>
        {
            Some(format!(
                "{who}: last successful backup {} ago ({}), older than Metrics.MaxAge {max}{last_error}",
                ago(now, success),
                now_string(success)
            ))
        }
        Some(_) => None,
        None => {
            let since = started?;
            (now.duration_since(since) > SignedDuration::try_from(max_age).ok()?).then(|| {
                format!(
                    "{who}: no successful backup in the {} since the daemon started, longer than Metrics.MaxAge {max}{last_error}",
                    ago(now, since)
                )
            })
        }
    }
}

/// One line per stale database, saying why; empty when all are current.
/// A database is stale when its last restore drill failed, or when its
/// last successful backup is older than the policy's maximum age (before
/// its first backup, counting from the daemon's start).
pub fn stale_reasons(report: &StatusReport, policy: &HealthPolicy, now: Timestamp) -> Vec<String> {
    let started = report.started.parse().ok();
    report
        .databases
        .iter()
        .filter_map(|d| stale_reason(d, started, policy, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn report(last_success: Option<&str>) -> StatusReport {
        StatusReport {
            updated: String::new(),
            started: "2026-12-01T00:00:00Z".into(),
            databases: vec![DatabaseStatus {
                database: "app.db".into(),
                location: "/backups/app.db".into(),
                last_success: last_success.map(str::to_owned),
                ..DatabaseStatus::default()
            }],
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn max_age_defaults_to_twice_the_frequency() {
        assert_eq!(HealthPolicy::new(None, Some(HOUR)).max_age, Some(2 * HOUR));
        assert_eq!(
            HealthPolicy::new(Some(HOUR), Some(HOUR * 5)).max_age,
            Some(HOUR)
        );
        assert_eq!(HealthPolicy::new(None, None).max_age, None);
    }

    #[test]
    fn a_backup_younger_than_max_age_is_healthy_and_an_older_one_is_not() {
        let policy = HealthPolicy::new(Some(2 * HOUR), None);
        let r = report(Some("2026-12-01T10:00:00Z"));
        assert!(stale_reasons(&r, &policy, at("2026-12-01T11:59:00Z")).is_empty());
        let reasons = stale_reasons(&r, &policy, at("2026-12-01T12:30:00Z"));
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with(
                "database app.db at /backups/app.db: last successful backup 2h 30m ago"
            ),
            "{}",
            reasons[0]
        );
        assert!(reasons[0].contains("Metrics.MaxAge 2h"), "{}", reasons[0]);
    }

    #[test]
    fn before_the_first_backup_the_daemon_start_counts() {
        let policy = HealthPolicy::new(Some(HOUR), None);
        let mut r = report(None);
        assert!(stale_reasons(&r, &policy, at("2026-12-01T00:30:00Z")).is_empty());
        r.databases[0].last_error = Some("disk full".into());
        let reasons = stale_reasons(&r, &policy, at("2026-12-01T01:30:00Z"));
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].contains("no successful backup in the 1h 30m since the daemon started"),
            "{}",
            reasons[0]
        );
        assert!(
            reasons[0].ends_with("; last error: disk full"),
            "{}",
            reasons[0]
        );
    }

    #[test]
    fn a_failed_drill_is_unhealthy_whatever_the_age() {
        let mut r = report(Some("2026-12-01T10:00:00Z"));
        r.databases[0].last_drill_error = Some("chunk 3 does not authenticate".into());
        r.databases[0].last_drill_backup = Some("app.db-x.sqlseal".into());
        for policy in [
            HealthPolicy::new(None, None),
            HealthPolicy::new(Some(HOUR), None),
        ] {
            let reasons = stale_reasons(&r, &policy, at("2026-12-01T10:00:01Z"));
            assert_eq!(
                reasons,
                vec!["database app.db at /backups/app.db: the restore drill of app.db-x.sqlseal failed: chunk 3 does not authenticate".to_owned()]
            );
        }
    }

    #[test]
    fn a_database_found_unchanged_counts_as_current() {
        let policy = HealthPolicy::new(Some(HOUR), None);
        let mut r = report(Some("2026-12-01T00:00:00Z"));
        assert_eq!(
            stale_reasons(&r, &policy, at("2026-12-01T05:00:00Z")).len(),
            1
        );
        r.databases[0].unchanged_at = Some("2026-12-01T04:30:00Z".into());
        assert!(stale_reasons(&r, &policy, at("2026-12-01T05:00:00Z")).is_empty());
    }

    #[test]
    fn without_a_max_age_only_drills_count() {
        let r = report(None);
        let policy = HealthPolicy::new(None, None);
        assert!(stale_reasons(&r, &policy, at("2030-01-01T00:00:00Z")).is_empty());
    }
}
