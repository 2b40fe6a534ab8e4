//! `S3Store` against a real S3 server (s3s-fs) on the loopback interface.
#![cfg(feature = "s3")]

use std::io::{Read, Write};
use std::time::Duration;

use sqlseal_store::{BackupStore, S3Location, S3Settings, S3Store, StoreError, open_store};
use sqlseal_testkit::s3s::{self, BUCKET, CountingProxy, S3Server};

fn name(i: u32) -> String {
    format!("app.db-20261124T0800{i:02}.000000Z-00{i:02}.sqlseal")
}

/// Deterministic bytes that do not repeat with the part size.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn store(server: &S3Server, prefix: &str) -> S3Store {
    store_with(server, prefix, &server.settings())
}

fn store_with(server: &S3Server, prefix: &str, settings: &S3Settings) -> S3Store {
    let location: S3Location = server.url(prefix).parse().expect("valid URL");
    S3Store::new(location, settings).expect("store")
}

fn read_all(store: &dyn BackupStore, name: &str) -> Vec<u8> {
    let mut back = Vec::new();
    store
        .open(name)
        .expect("open")
        .read_to_end(&mut back)
        .expect("read");
    back
}

fn names(store: &dyn BackupStore) -> Vec<String> {
    store
        .list()
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// Objects whose key ends with `name`, as files in the server's root.
fn stored_as(server: &S3Server, name: &str) -> Vec<String> {
    server
        .files()
        .into_iter()
        .filter(|f| f.ends_with(name))
        .collect()
}

#[test]
fn multipart_round_trip_becomes_visible_only_on_finish() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server, "prod/app.db");
    assert_eq!(store.location(), format!("s3://{BUCKET}/prod/app.db"));
    // Three full 5 MiB parts and a short last one, written in odd slices.
    let payload = data(3 * (5 << 20) + 12_345, 7);
    let mut writer = store.create(&name(1)).expect("create");
    for slice in payload.chunks(1_000_003) {
        writer.write_all(slice).expect("write");
    }
    assert!(names(&store).is_empty(), "invisible until finished");
    assert!(stored_as(&server, &name(1)).is_empty(), "no object yet");
    writer.finish().expect("finish");

    let listed = store.list().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name(1));
    assert_eq!(listed[0].size, payload.len() as u64);
    assert_eq!(
        stored_as(&server, &name(1)),
        [format!("{BUCKET}/prod/app.db/{}", name(1))]
    );
    let back = read_all(&store, &name(1));
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "read back what was written");

    // Small reads across range boundaries give the same bytes.
    let mut reader = store.open(&name(1)).expect("open");
    let mut small = vec![0u8; 4093];
    let mut offset = 0;
    while offset < 9 << 20 {
        let n = reader.read(&mut small).expect("read");
        assert!(n > 0);
        assert_eq!(&small[..n], &payload[offset..offset + n], "at {offset}");
        offset += n;
    }
    drop(reader);

    store.delete(&name(1)).expect("delete");
    assert!(names(&store).is_empty());
    assert!(matches!(
        store.delete(&name(1)),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.open(&name(1)),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn small_empty_foreign_and_nested_objects() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server, "p");
    let mut w = store.create(&name(2)).expect("create");
    w.write_all(b"abc").expect("write");
    w.finish().expect("finish a one-part upload");
    store
        .create(&name(1))
        .expect("create")
        .finish()
        .expect("finish an empty upload");
    assert_eq!(read_all(&store, &name(2)), b"abc");
    assert_eq!(
        read_all(&store, &name(1)),
        b"",
        "an empty object reads empty"
    );

    // Objects the store did not make: foreign names, deeper prefixes, and
    // a sibling prefix that shares the first letters.
    let other = open_store(server.url("p/sub"), &server.settings()).expect("store");
    other
        .create(&name(3))
        .expect("create")
        .finish()
        .expect("finish");
    let sibling = open_store(server.url("p2"), &server.settings()).expect("store");
    sibling
        .create(&name(4))
        .expect("create")
        .finish()
        .expect("finish");
    std::fs::write(server.root().join(BUCKET).join("p/notes.txt"), "x").expect("foreign");
    assert_eq!(names(&store), [name(1), name(2)], "sorted, only ours");
    assert_eq!(names(other.as_ref()), [name(3)]);

    let root = open_store(format!("s3://{BUCKET}"), &server.settings()).expect("store");
    assert!(
        names(root.as_ref()).is_empty(),
        "nothing at the bucket root"
    );
    assert_eq!(store.clean_stale(Duration::ZERO).expect("clean"), 0);
    assert!(store.local_path(&name(1)).is_none());
}

#[test]
fn a_dropped_writer_aborts_and_leaves_nothing() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server, "p");
    let mut writer = store.create(&name(1)).expect("create");
    writer
        .write_all(&data(11 << 20, 3))
        .expect("two parts sent");
    drop(writer);
    assert!(names(&store).is_empty());
    assert!(stored_as(&server, &name(1)).is_empty());
    // The name is free again.
    let mut writer = store.create(&name(1)).expect("create again");
    writer.write_all(b"second").expect("write");
    writer.finish().expect("finish");
    assert_eq!(read_all(&store, &name(1)), b"second");
}

#[test]
fn never_replaces_an_existing_backup() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server, "p");
    let mut first = store.create(&name(1)).expect("create");
    let mut second = store
        .create(&name(1))
        .expect("create before either finished");
    first.write_all(b"first").expect("write");
    second.write_all(b"second").expect("write");
    first.finish().expect("finish");
    assert!(matches!(second.finish(), Err(StoreError::AlreadyExists(_))));
    assert_eq!(read_all(&store, &name(1)), b"first");
    assert!(matches!(
        store.create(&name(1)),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.create("../x.sqlseal"),
        Err(StoreError::InvalidName(_))
    ));
}

#[test]
fn plain_http_needs_allow_http() {
    let settings = S3Settings {
        endpoint: "http://127.0.0.1:9".into(),
        use_env: false,
        ..S3Settings::default()
    };
    let location: S3Location = "s3://bucket/p".parse().expect("URL");
    let err = S3Store::new(location.clone(), &settings).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "invalid backup location `s3://bucket/p`: S3.Endpoint http://127.0.0.1:9 is plain \
         http; set S3.AllowHttp to true to allow it"
    );
    let allowed = S3Settings {
        allow_http: true,
        ..settings
    };
    assert!(S3Store::new(location, &allowed).is_ok());
}

#[test]
fn a_missing_bucket_is_named() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let location: S3Location = "s3://no-such-bucket/p".parse().expect("URL");
    let store = S3Store::new(location, &server.settings()).expect("store");
    for err in [
        store.list().expect_err("list"),
        store.create(&name(1)).err().expect("create"),
        store.open(&name(1)).err().expect("open"),
    ] {
        assert!(matches!(err, StoreError::NoBucket { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "bucket no-such-bucket does not exist (s3://no-such-bucket/p); \
             create it, or check S3.Endpoint"
        );
    }
}

#[test]
fn wrong_credentials_are_refused_without_showing_the_secret() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let good = store(&server, "p");
    good.create(&name(1))
        .expect("create")
        .finish()
        .expect("finish");
    let wrong = S3Settings {
        secret_access_key: String::from("not-the-secret-at-all").into(),
        ..server.settings()
    };
    let store = store_with(&server, "p", &wrong);
    for err in [
        store.list().expect_err("list"),
        store.open(&name(1)).err().expect("open"),
        store.create(&name(2)).err().expect("create"),
    ] {
        let text = err.to_string();
        assert!(matches!(err, StoreError::Denied { .. }), "{err:?}");
        assert!(
            text.contains("access denied; check S3.AccessKeyId"),
            "{text}"
        );
        assert!(!text.contains("not-the-secret-at-all"), "{text}");
        assert!(!text.contains(s3s::SECRET_KEY), "{text}");
    }
    assert!(!format!("{store:?}").contains("not-the-secret"));
    let unknown = S3Settings {
        access_key_id: "nobody".into(),
        ..server.settings()
    };
    let err = store_with(&server, "p", &unknown)
        .list()
        .expect_err("unknown key id");
    assert!(matches!(err, StoreError::Denied { .. }), "{err:?}");
}

#[test]
fn a_server_that_goes_away_mid_upload_leaves_nothing_visible() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let store = store(&server, "p");
    let mut writer = store.create(&name(1)).expect("create");
    writer
        .write_all(&data(6 << 20, 5))
        .expect("first part sent");
    server.stop();
    let chunk = data(1 << 20, 9);
    let mut failure = None;
    for _ in 0..40 {
        if let Err(e) = writer.write_all(&chunk) {
            failure = Some(e.to_string());
            break;
        }
    }
    let failure = match failure {
        Some(f) => f,
        None => writer.finish().expect_err("finish fails").to_string(),
    };
    let url = format!("s3://{BUCKET}/p/{}", name(1));
    assert!(failure.contains(&url), "names the backup: {failure}");
    server.resume();
    assert!(names(&store).is_empty(), "nothing visible");
    assert!(stored_as(&server, &name(1)).is_empty());
    // The same store keeps working once the server is back.
    let mut writer = store.create(&name(2)).expect("create");
    writer.write_all(b"after").expect("write");
    writer.finish().expect("finish");
    assert_eq!(names(&store), [name(2)]);
}

#[test]
fn a_read_fails_cleanly_when_the_server_goes_away() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let store = store(&server, "p");
    let mut writer = store.create(&name(1)).expect("create");
    writer.write_all(&data(20 << 20, 11)).expect("write");
    writer.finish().expect("finish");
    let mut reader = store.open(&name(1)).expect("open");
    server.stop();
    let mut sink = Vec::new();
    let err = reader.read_to_end(&mut sink).expect_err("read fails");
    assert!(err.to_string().contains("reading s3://"), "{err}");
    assert!(sink.len() < 20 << 20);
}

/// The daemon calls the store from `spawn_blocking` and may drop it inside
/// async code; neither may panic.
#[test]
fn works_from_spawn_blocking_and_drops_in_async_code() {
    let Some(server) = S3Server::start() else {
        return;
    };
    for multi_thread in [true, false] {
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("runtime");
        let settings = server.settings();
        let url = server.url(if multi_thread { "mt" } else { "ct" });
        let listed = runtime.block_on(async move {
            let store = tokio::task::spawn_blocking(move || {
                let store = open_store(&url, &settings).expect("store");
                let mut w = store.create(&name(1)).expect("create");
                w.write_all(&data(6 << 20, 1)).expect("write");
                w.finish().expect("finish");
                let mut dropped = store.create(&name(2)).expect("create");
                dropped.write_all(b"x").expect("write");
                drop(dropped);
                store
            })
            .await
            .expect("blocking task");
            let listed = store.list().expect("list from async code works too");
            drop(store);
            listed
        });
        assert_eq!(listed.len(), 1, "multi_thread {multi_thread}");
        assert_eq!(listed[0].size, 6 << 20);
    }
}

#[test]
fn a_backup_smaller_than_a_part_is_one_put_and_the_write_path_never_lists() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = CountingProxy::start(&server);
    let mut settings = server.settings();
    settings.endpoint = proxy.endpoint();
    let store = store_with(&server, "counted", &settings);
    let write = |i: u32, len: usize| {
        let mut w = store.create(&name(i)).expect("create");
        w.write_all(&data(len, u64::from(i))).expect("write");
        w.finish().expect("finish");
    };
    let methods = |requests: &[String]| -> Vec<String> {
        requests
            .iter()
            .map(|r| r.split(' ').next().unwrap_or("").to_owned())
            .collect()
    };
    // The first write checks the bucket once (a LIST), then the name (a
    // HEAD at create and one before the PUT), then one PUT.
    write(1, 100_000);
    let first = proxy.take();
    assert_eq!(methods(&first), ["GET", "HEAD", "HEAD", "PUT"], "{first:?}");
    assert!(first[0].contains("list-type=2"), "{first:?}");
    // Every later small backup (an increment): one PUT, no LIST, no
    // multipart upload.
    for i in 2..5 {
        write(i, 30_000);
        let later = proxy.take();
        assert_eq!(
            methods(&later),
            ["HEAD", "HEAD", "PUT"],
            "backup {i}: {later:?}"
        );
        assert!(!later[2].contains("uploadId"), "{later:?}");
    }
    // Larger than a part: a multipart upload.
    write(9, settings.part_size + 1000);
    let large = proxy.take();
    assert!(
        large
            .iter()
            .any(|r| r.starts_with("POST") && r.contains("uploads")),
        "{large:?}"
    );
    assert_eq!(
        large.iter().filter(|r| r.starts_with("PUT")).count(),
        2,
        "two parts: {large:?}"
    );
    for (i, len) in [(1, 100_000), (2, 30_000), (9, settings.part_size + 1000)] {
        assert_eq!(
            read_all(&store, &name(i)),
            data(len, u64::from(i)),
            "backup {i}"
        );
    }
}
