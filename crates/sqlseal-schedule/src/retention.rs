//! Which backups to delete to keep the newest `max_count`.

use sqlseal_format::CreatedAt;

/// Names of the backups to delete so that the newest `max_count` remain
/// (`0` keeps all). Order is by header creation time, ties by name; the
/// input order does not matter. The newest is never returned. Pass only
/// backups whose headers authenticated: a time nobody vouches for must
/// not push genuine backups out.
pub fn beyond_max_count(backups: &[(String, CreatedAt)], max_count: u64) -> Vec<String> {
    if max_count == 0 {
        return Vec::new();
    }
    let mut sorted: Vec<&(String, CreatedAt)> = backups.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let keep = usize::try_from(max_count).unwrap_or(usize::MAX);
    sorted
        .into_iter()
        .skip(keep)
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
