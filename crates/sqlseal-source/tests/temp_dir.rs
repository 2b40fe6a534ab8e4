//! Where `backup-api` and `vacuum` put their plaintext copy by default: in
//! a private directory beside the database, never elsewhere.

use std::path::Path;

use rusqlite::Connection;
use sqlseal_source::{Method, SnapshotOptions, SnapshotSource, SqliteSource};

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn copies_live_in_a_private_directory_beside_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    let conn = Connection::open(&db).expect("open");
    conn.execute_batch(
        "CREATE TABLE b(x);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 64)
         INSERT INTO b SELECT randomblob(64 * 1024) FROM c;",
    )
    .expect("fill");
    drop(conn);
    let before = entries(dir.path());
    for method in [Method::BackupApi, Method::Vacuum] {
        let mut options = SnapshotOptions::new(method);
        options.block_size = 64 * 1024;
        assert!(options.temp_dir.is_none(), "the default");
        let mut snapshot = SqliteSource::new(&db, options)
            .snapshot()
            .expect("snapshot");
        snapshot.next_block().expect("a block").expect("ok");
        // While the snapshot streams, its copy is beside the database.
        let during: Vec<String> = entries(dir.path())
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        assert_eq!(during.len(), 1, "{method:?}: one new entry: {during:?}");
        assert!(
            during[0].starts_with(".sqlseal-snapshot-"),
            "{method:?}: {during:?}"
        );
        let temp = dir.path().join(&during[0]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&temp).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{method:?}: private directory");
        }
        assert_eq!(entries(&temp), vec!["snapshot.db".to_owned()]);
        drop(snapshot);
        assert_eq!(entries(dir.path()), before, "{method:?}: removed after");
    }
}
