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
//!
//! Chains ([`decide_chains`]): the rules count full backups only, and an
//! increment goes with its chain's full backup. `Backup.IncrementMaxAge`
//! also drops the increments older than its window, except those of the
//! newest chain (a point-in-time window never leaves the newest full backup
//! without its increments).

use std::collections::{BTreeMap, HashMap};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use sqlseal_format::{BackupId, ChainLink, CreatedAt, Header};

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

/// One authenticated backup, as chain-aware retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainMember {
    /// The backup's name.
    pub name: String,
    /// Its id.
    pub id: BackupId,
    /// Its creation time.
    pub created: CreatedAt,
    /// For an increment, its place in its chain.
    pub chain: Option<ChainLink>,
}

impl ChainMember {
    /// From an authenticated header.
    pub fn from_header(name: &str, header: &Header) -> Self {
        let m = &header.metadata;
        ChainMember {
            name: name.to_owned(),
            id: m.backup_id,
            created: m.created,
            chain: m.chain,
        }
    }
}

/// What to do with increments beside the rules for full backups.
#[derive(Clone, Copy, Debug, Default)]
pub struct IncrementRetention {
    /// Drop increments older than this (but the newest chain's).
    pub max_age: Option<SignedDuration>,
    /// The time `max_age` counts back from.
    pub now: Option<Timestamp>,
    /// Keep increments whose full backup is not among those given (when
    /// some backup in the store did not authenticate, its full backup may
    /// be one of them); otherwise such increments, which cannot be
    /// restored, are deleted.
    pub keep_orphans: bool,
}

/// Decides for every backup of a store that may hold chains: the policy's
/// rules decide for the full backups; each increment is kept with its
/// chain's full backup (`chain`), unless [`IncrementRetention`] drops it.
/// Decisions come newest first; [`deletion_order`] orders the deletions.
pub fn decide_chains(
    backups: &[ChainMember],
    policy: &RetentionPolicy,
    increments: IncrementRetention,
) -> Vec<Decision> {
    let fulls: Vec<(String, CreatedAt)> = backups
        .iter()
        .filter(|b| b.chain.is_none())
        .map(|b| (b.name.clone(), b.created))
        .collect();
    let full_decisions = decide(&fulls, policy);
    let newest_full = full_decisions.first().map(|d| d.name.clone());
    let kept_fulls: HashMap<BackupId, bool> = backups
        .iter()
        .filter(|b| b.chain.is_none())
        .map(|b| {
            let kept = full_decisions.iter().any(|d| d.name == b.name && d.keep());
            (b.id, kept)
        })
        .collect();
    let newest_chain = backups
        .iter()
        .find(|b| Some(&b.name) == newest_full.as_ref())
        .map(|b| b.id);
    let cutoff = match (increments.max_age, increments.now) {
        (Some(age), Some(now)) if !age.is_zero() => now.checked_sub(age).ok(),
        _ => None,
    };
    let mut out: Vec<Decision> = full_decisions;
    for b in backups {
        let Some(link) = b.chain else { continue };
        let mut kept_by = Vec::new();
        match kept_fulls.get(&link.full) {
            Some(true) => {
                let too_old = cutoff.is_some_and(|c| b.created.timestamp() < c);
                if !too_old || newest_chain == Some(link.full) {
                    kept_by.push("chain");
                }
            }
            Some(false) => {}
            None if increments.keep_orphans => kept_by.push("orphan"),
            None => {}
        }
        out.push(Decision {
            name: b.name.clone(),
            created: b.created,
            kept_by,
        });
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.name.cmp(&a.name)));
    out
}

/// The names `decisions` delete, in a safe order: increments before full
/// backups, and within those the newest first, so that a deletion cut
/// short leaves every chain a shorter chain that still restores.
pub fn deletion_order(decisions: &[Decision], backups: &[ChainMember]) -> Vec<String> {
    let sequence = |name: &str| {
        backups
            .iter()
            .find(|b| b.name == name)
            .and_then(|b| b.chain)
            .map_or(0, |l| l.sequence)
    };
    let mut doomed: Vec<&Decision> = decisions.iter().filter(|d| !d.keep()).collect();
    doomed.sort_by(|a, b| {
        sequence(&b.name)
            .cmp(&sequence(&a.name))
            .then_with(|| b.created.cmp(&a.created))
    });
    doomed.into_iter().map(|d| d.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// `n` chains of a full backup and `links` increments, a day apart
    /// (increments an hour apart), oldest first.
    fn chains(n: u8, links: u32) -> Vec<ChainMember> {
        let mut out = Vec::new();
        for c in 0..n {
            let full = BackupId([c + 1; 16]);
            let day = i64::from(c) * 86_400;
            out.push(ChainMember {
                name: format!("full{c}"),
                id: full,
                created: at(day),
                chain: None,
            });
            let mut parent = full;
            for s in 1..=links {
                let id = BackupId([c + 1, s as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
                out.push(ChainMember {
                    name: format!("inc{c}-{s}"),
                    id,
                    created: at(day + i64::from(s) * 3600),
                    chain: Some(ChainLink {
                        full,
                        parent,
                        parent_image: [0; 32],
                        sequence: s,
                    }),
                });
                parent = id;
            }
        }
        out
    }

    fn names(decisions: &[Decision], keep: bool) -> Vec<String> {
        let mut v: Vec<String> = decisions
            .iter()
            .filter(|d| d.keep() == keep)
            .map(|d| d.name.clone())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn max_count_counts_full_backups_and_increments_go_with_their_chain() {
        let backups = chains(4, 5);
        let decisions = decide_chains(
            &backups,
            &RetentionPolicy::max_count(2),
            IncrementRetention::default(),
        );
        assert_eq!(decisions.len(), backups.len());
        let deleted = names(&decisions, false);
        let expected: Vec<String> = ["full0", "full1"]
            .iter()
            .map(|s| s.to_string())
            .chain((0..2).flat_map(|c| (1..=5).map(move |s| format!("inc{c}-{s}"))))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(deleted, expected);
        // Increments first, newest link first; full backups last.
        let order = deletion_order(&decisions, &backups);
        assert_eq!(order.len(), 12);
        assert!(order[..10].iter().all(|n| n.starts_with("inc")));
        assert!(
            order[0].ends_with("-5") && order[9].ends_with("-1"),
            "{order:?}"
        );
        assert!(order[10..].iter().all(|n| n.starts_with("full")));
    }

    #[test]
    fn increment_max_age_spares_the_newest_chain() {
        let backups = chains(3, 4);
        let now = at(2 * 86_400 + 10 * 3600).timestamp();
        let decisions = decide_chains(
            &backups,
            &RetentionPolicy::max_count(3),
            IncrementRetention {
                max_age: Some(SignedDuration::from_hours(40)),
                now: Some(now),
                keep_orphans: false,
            },
        );
        let deleted = names(&decisions, false);
        // Now is 58 h after chain 0's full backup: chain 0's increments
        // (1 h to 4 h) are older than 40 h, chain 1's (25 h to 28 h) are
        // not, and chain 2 is the newest chain.
        assert_eq!(deleted, vec!["inc0-1", "inc0-2", "inc0-3", "inc0-4"]);
        let old_newest = decide_chains(
            &backups,
            &RetentionPolicy::max_count(3),
            IncrementRetention {
                max_age: Some(SignedDuration::from_hours(1)),
                now: Some(now + SignedDuration::from_hours(100)),
                keep_orphans: false,
            },
        );
        assert!(names(&old_newest, true).contains(&"inc2-4".to_owned()));
        assert!(!names(&old_newest, true).contains(&"inc1-1".to_owned()));
    }

    #[test]
    fn orphans_are_kept_only_when_asked() {
        let backups: Vec<ChainMember> = chains(2, 2)
            .into_iter()
            .filter(|b| b.name != "full0")
            .collect();
        let policy = RetentionPolicy::max_count(5);
        let dropped = decide_chains(&backups, &policy, IncrementRetention::default());
        assert_eq!(names(&dropped, false), vec!["inc0-1", "inc0-2"]);
        let kept = decide_chains(
            &backups,
            &policy,
            IncrementRetention {
                keep_orphans: true,
                ..IncrementRetention::default()
            },
        );
        assert!(names(&kept, false).is_empty());
    }

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
