//! Per-core throughput of the work done on every 1 MiB chunk of a backup:
//! sealing (lz4 + AES-256-GCM), opening (AES-256-GCM + lz4), and the
//! SHA-256 of the image that the pipeline computes in order.
//!
//! Three inputs of the same size: the first pages of a real SQLite database
//! of typical rows, incompressible random bytes, and all-zero pages.
//! Run with `cargo bench -p sqlseal-benches`; `docs/benchmarks.md` has the
//! figures and how they were taken.
//!
//! The times are the CPU time of the benchmarking thread where Linux
//! reports it (see [`Clock`]), so that other work sharing the machine does
//! not count as ours; set `SQLSEAL_BENCH_CLOCK=wall` for wall-clock time.
//! `SQLSEAL_BENCH_SAVE_TYPICAL=FILE` saves the typical input to FILE.

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rusqlite::{Connection, params};
use sqlseal_format::payload::FRAME_HEADER_LEN;
use sqlseal_format::{ChunkCipher, DataKey, FrameHeader, ImageDigest, SALT_LEN};

/// Chunk size of the benches: the format's default.
const CHUNK: usize = sqlseal_format::DEFAULT_CHUNK_SIZE as usize;
/// Chunks in each input; one bench iteration handles all of them.
const CHUNKS: usize = 8;
/// Bytes in each input.
const INPUT_LEN: usize = CHUNK * CHUNKS;

/// What the benches time.
///
/// Wall-clock time also counts the moments the scheduler runs another
/// process on our core, which on a small machine shared with builds is
/// most of the noise. Linux keeps the CPU time each thread has run in
/// `/proc/thread-self/schedstat` (first field, nanoseconds, current to the
/// moment of the read), so that is the default where it can be read.
enum Clock {
    Wall,
    /// An open `schedstat` of the benchmarking thread; reads are `pread`s.
    ThreadCpu(File),
}

impl Clock {
    fn from_env() -> Clock {
        if std::env::var("SQLSEAL_BENCH_CLOCK").is_ok_and(|v| v == "wall") {
            return Clock::Wall;
        }
        match File::open("/proc/thread-self/schedstat") {
            Ok(file) => {
                let clock = Clock::ThreadCpu(file);
                if clock.thread_cpu_now().is_some() {
                    return clock;
                }
                eprintln!("thread CPU time unreadable; timing wall-clock");
                Clock::Wall
            }
            Err(e) => {
                eprintln!("thread CPU time unavailable ({e}); timing wall-clock");
                Clock::Wall
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Clock::Wall => "wall-clock time",
            Clock::ThreadCpu(_) => "CPU time of the benchmarking thread",
        }
    }

    /// The thread's CPU time so far; `None` for the wall clock or if the
    /// read fails.
    fn thread_cpu_now(&self) -> Option<Duration> {
        let Clock::ThreadCpu(file) = self else {
            return None;
        };
        let mut buf = [0u8; 96];
        let n = file.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let nanos = text.split_ascii_whitespace().next()?.parse().ok()?;
        Some(Duration::from_nanos(nanos))
    }

    /// Runs `work` and returns how long it took on this clock.
    fn time(&self, work: impl FnOnce()) -> Duration {
        match self {
            Clock::Wall => {
                let start = Instant::now();
                work();
                start.elapsed()
            }
            Clock::ThreadCpu(_) => {
                let start = self.thread_cpu_now();
                work();
                let end = self.thread_cpu_now();
                // Checked to be readable in `from_env`; if a read fails
                // later the bench cannot report an honest figure.
                match (start, end) {
                    (Some(start), Some(end)) => end.saturating_sub(start),
                    _ => panic!("reading the thread CPU time failed during the bench"),
                }
            }
        }
    }
}

/// A small deterministic generator (SplitMix64), so every run benches the
/// same bytes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for block in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            block.copy_from_slice(&bytes[..block.len()]);
        }
    }
}

// Word lists the rows are drawn from, separated by spaces.
const FIRST_NAMES: &str = "Ada Alan Barbara Claude Dennis Edsger Frances Grace Hedy John Ken \
    Leslie Margaret Niklaus Radia Sophie Tim Whitfield";
const LAST_NAMES: &str = "Lovelace Turing Liskov Shannon Ritchie Dijkstra Allen Hopper Lamarr \
    McCarthy Thompson Lamport Hamilton Wirth Perlman Wilson Berners-Lee Diffie";
const DOMAINS: &str = "example.com example.org mail.example.net corp.example";
const COUNTRIES: &str = "DE FR GB US JP BR IN NL SE ES";
const STATUSES: &str = "pending paid shipped delivered cancelled refunded";
const WORDS: &str = "please leave the parcel at back door gift wrap call before delivery \
    fragile handle with care invoice to company address second floor ring bell twice no \
    weekend deliveries thank you";

fn words(list: &str) -> Vec<&str> {
    list.split_whitespace().collect()
}

/// Builds a SQLite database of typical application rows (customers and
/// their orders: short text, integers, timestamps, order references, free
/// text notes; a unique and a composite index, filled while the tables
/// grow as in a live database) and returns its file image.
fn typical_database_image(min_len: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("typical.db");
    let mut conn = Connection::open(&path).expect("create the database");
    conn.execute_batch(
        "CREATE TABLE customers(
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            country TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE orders(
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            reference TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            status TEXT NOT NULL,
            total_cents INTEGER NOT NULL,
            note TEXT
        );
        CREATE INDEX orders_by_customer ON orders(customer_id, created_at);",
    )
    .expect("create the schema");

    let (first_names, last_names, domains) =
        (words(FIRST_NAMES), words(LAST_NAMES), words(DOMAINS));
    let (countries, statuses, note_words) = (words(COUNTRIES), words(STATUSES), words(WORDS));
    let mut rng = SplitMix64(0x5eed);
    let tx = conn.transaction().expect("begin");
    {
        let mut add_customer = tx
            .prepare(
                "INSERT INTO customers(email, name, country, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .expect("prepare the customer insert");
        let mut add_order = tx
            .prepare(
                "INSERT INTO orders(customer_id, reference, created_at, status, total_cents, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .expect("prepare the order insert");
        let mut now: i64 = 1_700_000_000;
        let mut customers: i64 = 0;
        // About 130 bytes of table and index per order: 110k orders fill
        // some 14 MiB. The size is checked below.
        for order in 0..110_000u64 {
            now += rng.below(30) as i64;
            if customers == 0 || rng.below(8) == 0 {
                customers += 1;
                let first = rng.pick(&first_names);
                let last = rng.pick(&last_names);
                let email = format!(
                    "{}.{}{}@{}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    customers,
                    rng.pick(&domains)
                );
                add_customer
                    .execute(params![
                        email,
                        format!("{first} {last}"),
                        rng.pick(&countries),
                        now
                    ])
                    .expect("insert a customer");
            }
            // A business reference: sequence number and a random suffix.
            let reference = format!("ORD-{:08}-{:06x}", order + 1, rng.below(1 << 24));
            let note = if rng.below(3) == 0 {
                let words = 3 + rng.below(10);
                let note: Vec<&str> = (0..words).map(|_| rng.pick(&note_words)).collect();
                Some(note.join(" "))
            } else {
                None
            };
            add_order
                .execute(params![
                    1 + rng.below(customers as u64) as i64,
                    reference,
                    now,
                    statuses[(order % statuses.len() as u64) as usize],
                    100 + rng.below(50_000) as i64,
                    note
                ])
                .expect("insert an order");
        }
    }
    tx.commit().expect("commit");
    let page_size: u32 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .expect("read the page size");
    conn.close()
        .map_err(|(_, e)| e)
        .expect("close the database");
    let image = std::fs::read(&path).expect("read the database file");
    assert!(
        image.len() >= min_len,
        "the typical database is {} bytes, fewer than the {min_len} to bench on",
        image.len()
    );
    eprintln!(
        "typical database: {} bytes in {} pages of {page_size}; benching its first {min_len}",
        image.len(),
        image.len() / page_size as usize
    );
    image
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    SplitMix64(0xdec0de).fill(&mut buf);
    buf
}

fn cipher() -> ChunkCipher {
    ChunkCipher::new(
        &DataKey::from_bytes([0x42; 32]),
        &[0x17; SALT_LEN],
        CHUNK as u32,
    )
    .expect("the default chunk size is valid")
}

/// Seals every chunk of `input` as a non-final chunk; returns the frame
/// headers with their sealed bodies.
fn seal_all(cipher: &ChunkCipher, input: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    input
        .chunks(CHUNK)
        .enumerate()
        .map(|(index, chunk)| {
            let mut frame = Vec::new();
            cipher
                .seal(index as u64, chunk, None, &mut frame)
                .expect("seal a full chunk");
            let header: &[u8; FRAME_HEADER_LEN] = frame[..FRAME_HEADER_LEN]
                .try_into()
                .expect("a frame starts with its header");
            (
                FrameHeader::decode(header),
                frame[FRAME_HEADER_LEN..].to_vec(),
            )
        })
        .collect()
}

/// Checks that the sealed frames open to `input` again, and prints the
/// size of the sealed payload relative to the input.
fn check_round_trip(name: &str, cipher: &ChunkCipher, input: &[u8]) {
    let mut frames = seal_all(cipher, input);
    let sealed: usize = frames
        .iter()
        .map(|(_, body)| FRAME_HEADER_LEN + body.len())
        .sum();
    let mut opened = Vec::with_capacity(input.len());
    let mut out = Vec::new();
    for (header, body) in &mut frames {
        let trailer = cipher.open(header, body, &mut out).expect("open a chunk");
        assert!(trailer.is_none(), "no chunk was sealed as the final one");
        opened.extend_from_slice(&out);
    }
    assert!(
        opened == input,
        "{name}: the opened chunks differ from the input"
    );
    eprintln!(
        "{name}: {} bytes seal to {sealed} (ratio {:.3})",
        input.len(),
        sealed as f64 / input.len() as f64
    );
}

/// Benches `work` as one iteration over `INPUT_LEN` bytes.
fn bench_input(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    clock: &Clock,
    name: &str,
    mut work: impl FnMut(),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            clock.time(|| {
                for _ in 0..iters {
                    work();
                }
            })
        });
    });
}

fn chunk_benches(c: &mut Criterion) {
    let clock = Clock::from_env();
    eprintln!("timing: {}", clock.name());
    let typical = typical_database_image(INPUT_LEN);
    // The same bytes for another compressor (benches/lz4_reference.sh).
    if let Some(path) = std::env::var_os("SQLSEAL_BENCH_SAVE_TYPICAL") {
        std::fs::write(&path, &typical[..INPUT_LEN]).expect("save the typical input");
    }
    let inputs: [(&str, Vec<u8>); 3] = [
        ("typical", typical[..INPUT_LEN].to_vec()),
        ("random", random_bytes(INPUT_LEN)),
        ("zeros", vec![0u8; INPUT_LEN]),
    ];
    let cipher = cipher();
    for (name, input) in &inputs {
        check_round_trip(name, &cipher, input);
    }

    let mut group = c.benchmark_group("seal");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(INPUT_LEN as u64));
    for (name, input) in &inputs {
        let mut frame = Vec::with_capacity(sqlseal_format::payload::max_sealed_len(CHUNK as u32));
        bench_input(&mut group, &clock, name, || {
            for (index, chunk) in input.chunks(CHUNK).enumerate() {
                frame.clear();
                cipher
                    .seal(index as u64, black_box(chunk), None, &mut frame)
                    .expect("seal a full chunk");
                black_box(&frame);
            }
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(INPUT_LEN as u64));
    for (name, input) in &inputs {
        let frames = seal_all(&cipher, input);
        let mut out = Vec::with_capacity(CHUNK);
        // `open` decrypts in place, so every iteration gets fresh copies of
        // the sealed frames; the copying is not timed.
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut fresh = frames.clone();
                    total += clock.time(|| {
                        for (header, body) in &mut fresh {
                            cipher
                                .open(header, black_box(body), &mut out)
                                .expect("open a chunk");
                            black_box(&out);
                        }
                    });
                }
                total
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("image_sha256");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(INPUT_LEN as u64));
    bench_input(&mut group, &clock, "typical", || {
        let mut digest = ImageDigest::new();
        for chunk in inputs[0].1.chunks(CHUNK) {
            digest.update(black_box(chunk));
        }
        black_box(digest.trailer(0));
    });
    group.finish();

    // The two stages alone, to tell their shares of seal and open: lz4 on
    // the typical pages, AES-256-GCM (whose cost does not depend on the
    // bytes) on 1 MiB buffers.
    let mut group = c.benchmark_group("parts");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(INPUT_LEN as u64));
    let typical = &inputs[0].1;
    let mut compressed = vec![0u8; lz4_flex::block::get_maximum_output_size(CHUNK)];
    bench_input(&mut group, &clock, "lz4_compress/typical", || {
        for chunk in typical.chunks(CHUNK) {
            let n = lz4_flex::block::compress_into(black_box(chunk), &mut compressed)
                .expect("the buffer holds the worst case");
            black_box(&compressed[..n]);
        }
    });
    let blocks: Vec<Vec<u8>> = typical
        .chunks(CHUNK)
        .map(lz4_flex::block::compress)
        .collect();
    let mut raw = vec![0u8; CHUNK];
    bench_input(&mut group, &clock, "lz4_decompress/typical", || {
        for block in &blocks {
            let n = lz4_flex::block::decompress_into(black_box(block), &mut raw)
                .expect("decompress a block this bench compressed");
            black_box(&raw[..n]);
        }
    });
    let aead = Aes256Gcm::new_from_slice(&[0x42; 32]).expect("a 32-byte key");
    let mut buf = inputs[1].1[..CHUNK].to_vec();
    bench_input(&mut group, &clock, "aes256gcm_encrypt", || {
        for index in 0..CHUNKS as u8 {
            let tag = aead
                .encrypt_inout_detached(
                    &[index; 12].into(),
                    b"frame header",
                    InOutBuf::from(black_box(&mut buf[..])),
                )
                .expect("1 MiB is within the AES-GCM limit");
            black_box(tag);
        }
    });
    group.finish();
}

criterion_group!(benches, chunk_benches);
criterion_main!(benches);
