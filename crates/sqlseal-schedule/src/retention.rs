//! Which backups to keep: the newest `MaxCount`, and grandfather-father-son
//! rules (`KeepLast`, `KeepHourly`, `KeepDaily`, `KeepWeekly`, `KeepMonthly`,
//! `KeepYearly`) with restic's `forget` semantics.
//!
//! Walking the backups from newest to oldest, each rule with a count `n`
//! keeps a backup when the backup's period (its hour, day, ISO week, month or
//! year, in UTC) differs from the period of the last backup that rule kept,
//! until it has kept `n`; so each rule keeps the newest backup of each of its
//! `n` most recent periods that have a backup. `KeepLast` and `MaxCount`
//! keep the newest `n` backups. A backup is kept when any rule keeps it.
//! With no rule at all (`MaxCount: 0` and every `Keep*` 0), everything is
//! kept. Whatever the rules, the newest backup is always kept.
//!
//! Pass only backups whose headers authenticated: a time nobody vouches for
//! must not push genuine backups out.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use sqlseal_format::CreatedAt;

/// The retention rules; 0 means a rule is unused. With the `clap` feature
/// it is also the `--max-count` and `--keep-*` options of `backup prune`
/// (each field's first doc line is its help).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RetentionPolicy {
    /// Keep the newest N backups (as Backup.MaxCount).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    pub max_count: u64,
    /// Keep the newest N backups (as Backup.KeepLast).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    pub keep_last: u64,
    /// Keep the newest backup of each of the N most recent hours (UTC).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    pub keep_hourly: u64,
    /// Keep the newest backup of each of the N most recent days (UTC).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    pub keep_daily: u64,
    /// Keep the newest backup of each of the N most recent ISO weeks.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    pub keep_weekly: u64,
    /// Keep the newest backup of each of the N most recent months (UTC).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    pub keep_monthly: u64,
    /// Keep the newest backup of each of the N most recent years (UTC).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N", default_value_t = 0))]
    pub keep_yearly: u64,
}

impl RetentionPolicy {
    /// Only `MaxCount`, as before grandfather-father-son rules existed.
    pub fn max_count(max_count: u64) -> Self {
        RetentionPolicy {
            max_count,
            ..Self::default()
        }
    }

    /// Whether no rule is set, so that every backup is kept.
    pub fn keeps_all(&self) -> bool {
        self.rules().iter().all(|(_, n, _)| *n == 0)
    }

    fn rules(&self) -> [(&'static str, u64, Period); 7] {
        [
            ("max-count", self.max_count, Period::Each),
            ("last", self.keep_last, Period::Each),
            ("hourly", self.keep_hourly, Period::Hour),
            ("daily", self.keep_daily, Period::Day),
            ("weekly", self.keep_weekly, Period::Week),
            ("monthly", self.keep_monthly, Period::Month),
            ("yearly", self.keep_yearly, Period::Year),
        ]
    }
}

#[derive(Clone, Copy, Debug)]
enum Period {
    Each,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// The period a time falls in, as a comparable key; `Each` gives every
    /// backup its own period (by its position).
    fn key(self, created: CreatedAt, position: usize) -> (i64, i64, i64) {
        let dt = created.timestamp().to_zoned_datetime(TimeZone::UTC);
        let (y, m, d, h) = (
            i64::from(dt.year()),
            i64::from(dt.month()),
            i64::from(dt.day()),
            i64::from(dt.hour()),
        );
        match self {
            Period::Each => (position as i64, 0, 0),
            Period::Hour => (y, m * 100 + d, h),
            Period::Day => (y, m, d),
            Period::Week => {
                let week = dt.date().iso_week_date();
                (i64::from(week.year()), i64::from(week.week()), 0)
            }
            Period::Month => (y, m, 0),
            Period::Year => (y, 0, 0),
        }
    }
}

/// What the policy decided for one backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The backup's name.
    pub name: String,
    /// Its (authenticated) creation time.
    pub created: CreatedAt,
    /// The rules that keep it (`max-count`, `last`, `hourly`, ..., or
    /// `newest` for the newest backup); empty when it is to be deleted.
    pub kept_by: Vec<&'static str>,
}

impl Decision {
    /// Whether the backup is kept.
    pub fn keep(&self) -> bool {
        !self.kept_by.is_empty()
    }
}

/// Decides for every backup, newest first (ties by name, newest name first).
pub fn decide(backups: &[(String, CreatedAt)], policy: &RetentionPolicy) -> Vec<Decision> {
    let mut sorted: Vec<&(String, CreatedAt)> = backups.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let keep_all = policy.keeps_all();
    let mut left: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut last: BTreeMap<&'static str, (i64, i64, i64)> = BTreeMap::new();
    for (name, n, _) in policy.rules() {
        left.insert(name, n);
    }
    sorted
        .into_iter()
        .enumerate()
        .map(|(position, (name, created))| {
            let mut kept_by = Vec::new();
            if keep_all {
                kept_by.push("all");
            }
            for (rule, _, period) in policy.rules() {
                let Some(n) = left.get_mut(rule) else {
                    continue;
                };
                if *n == 0 {
                    continue;
                }
                let key = period.key(*created, position);
                if last.get(rule) != Some(&key) {
                    last.insert(rule, key);
                    *n -= 1;
                    kept_by.push(rule);
                }
            }
            if position == 0 && kept_by.is_empty() {
                kept_by.push("newest");
            }
            Decision {
                name: name.clone(),
                created: *created,
                kept_by,
            }
        })
        .collect()
}

/// Names of the backups the policy deletes (never the newest).
pub fn to_delete(backups: &[(String, CreatedAt)], policy: &RetentionPolicy) -> Vec<String> {
    decide(backups, policy)
        .into_iter()
        .filter(|d| !d.keep())
        .map(|d| d.name)
        .collect()
}

/// Names of the backups to delete so that the newest `max_count` remain
/// (`0` keeps all). Order is by header creation time, ties by name; the
/// input order does not matter. The newest is never returned.
pub fn beyond_max_count(backups: &[(String, CreatedAt)], max_count: u64) -> Vec<String> {
    to_delete(backups, &RetentionPolicy::max_count(max_count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn at(s: i64) -> CreatedAt {
        CreatedAt::from_microsecond(s * 1_000_000).expect("valid")
    }

    #[test]
    fn keeps_the_newest() {
        let backups: Vec<(String, CreatedAt)> = [3, 1, 4, 2, 5]
            .iter()
            .map(|&i| (format!("b{i}"), at(i)))
            .collect();
        assert_eq!(beyond_max_count(&backups, 2), vec!["b3", "b2", "b1"]);
        assert_eq!(beyond_max_count(&backups, 5), Vec::<String>::new());
        assert_eq!(beyond_max_count(&backups, 9), Vec::<String>::new());
        assert_eq!(
            beyond_max_count(&backups, 0),
            Vec::<String>::new(),
            "0 keeps all"
        );
        assert_eq!(beyond_max_count(&backups, 1), vec!["b4", "b3", "b2", "b1"]);
        for max in 0..7 {
            assert!(
                !beyond_max_count(&backups, max).contains(&"b5".to_owned()),
                "max_count {max} deleted the newest"
            );
        }
    }

    fn utc(y: i16, m: i8, d: i8, h: i8) -> CreatedAt {
        let ts = date(y, m, d)
            .at(h, 0, 0, 0)
            .to_zoned_datetime(TimeZone::UTC)
            .expect("valid")
            .timestamp();
        CreatedAt::from_timestamp(ts)
    }

    /// Two years of backups every 6 hours, 2025-01-01 to 2026-12-31.
    fn history() -> Vec<(String, CreatedAt)> {
        let mut out = Vec::new();
        let mut day = date(2025, 1, 1);
        while day <= date(2026, 12, 31) {
            for h in [0, 6, 12, 18] {
                let c = utc(day.year(), day.month(), day.day(), h);
                out.push((format!("b-{day}-{h:02}"), c));
            }
            day = day.tomorrow().expect("date");
        }
        out
    }

    fn kept(policy: RetentionPolicy) -> Vec<String> {
        decide(&history(), &policy)
            .into_iter()
            .filter(Decision::keep)
            .map(|d| d.name)
            .collect()
    }

    #[test]
    fn gfs_on_two_years_keeps_one_per_period() {
        let policy = RetentionPolicy {
            keep_last: 2,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 12,
            keep_yearly: 3,
            ..RetentionPolicy::default()
        };
        let kept = kept(policy);
        // last 2: the two newest; daily 7: the 18:00 backup of 12-25 .. 12-31
        // (12-31 already kept by `last`, still counted by daily).
        for name in [
            "b-2026-12-31-18",
            "b-2026-12-31-12",
            "b-2026-12-25-18",
            "b-2026-12-30-18",
        ] {
            assert!(kept.contains(&name.to_owned()), "{name} kept: {kept:?}");
        }
        assert!(
            !kept.contains(&"b-2026-12-24-18".to_owned()),
            "daily stops at 7"
        );
        // weekly 4: newest of ISO weeks 2026-W53 (12-28..), W52, W51, W50.
        assert!(
            kept.contains(&"b-2026-12-27-18".to_owned()),
            "W52 ends on Sunday 12-27"
        );
        assert!(kept.contains(&"b-2026-12-20-18".to_owned()), "W51");
        assert!(kept.contains(&"b-2026-12-13-18".to_owned()), "W50");
        assert!(
            !kept.contains(&"b-2026-12-06-18".to_owned()),
            "weekly stops at 4"
        );
        // monthly 12: the last backup of each month of 2026.
        for m in 1..=11 {
            let last_day = date(2026, m, 1).last_of_month();
            let name = format!("b-{last_day}-18");
            assert!(kept.contains(&name), "{name} (monthly) kept");
        }
        // yearly 3: 2026 and 2025 exist: the newest of each.
        assert!(kept.contains(&"b-2025-12-31-18".to_owned()), "yearly 2025");
        assert!(
            !kept.contains(&"b-2025-11-30-18".to_owned()),
            "monthly count used up in 2026"
        );
        let expected = 2 + 6 + 2 + 11 + 1; // last, daily beyond last, weekly beyond daily, monthly beyond, yearly
        assert_eq!(kept.len(), expected, "{kept:?}");
    }

    #[test]
    fn hourly_keeps_distinct_hours_and_rules_combine_as_a_union() {
        let only_hourly = kept(RetentionPolicy {
            keep_hourly: 3,
            ..RetentionPolicy::default()
        });
        assert_eq!(
            only_hourly,
            vec!["b-2026-12-31-18", "b-2026-12-31-12", "b-2026-12-31-06"]
        );
        let with_max = kept(RetentionPolicy {
            keep_hourly: 3,
            max_count: 5,
            ..RetentionPolicy::default()
        });
        assert_eq!(
            with_max.len(),
            5,
            "max-count 5 keeps a superset: {with_max:?}"
        );
    }

    #[test]
    fn no_rule_keeps_everything_and_the_newest_always_stays() {
        let all = history();
        assert_eq!(
            to_delete(&all, &RetentionPolicy::default()),
            Vec::<String>::new()
        );
        let yearly = decide(
            &all,
            &RetentionPolicy {
                keep_yearly: 1,
                ..RetentionPolicy::default()
            },
        );
        assert_eq!(yearly.iter().filter(|d| d.keep()).count(), 1);
        assert_eq!(yearly[0].name, "b-2026-12-31-18");
        assert_eq!(yearly[0].kept_by, vec!["yearly"]);
    }

    #[test]
    fn reasons_name_every_rule_that_keeps_a_backup() {
        let d = decide(
            &history(),
            &RetentionPolicy {
                keep_last: 1,
                keep_daily: 1,
                keep_monthly: 1,
                ..RetentionPolicy::default()
            },
        );
        assert_eq!(d[0].kept_by, vec!["last", "daily", "monthly"]);
        assert!(!d[1].keep());
    }
}
