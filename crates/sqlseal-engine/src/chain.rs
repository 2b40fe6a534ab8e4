//! Chains: a full backup followed by increments, each a complete sealed
//! container holding the pages changed since its parent.
//!
//! Making a link needs the parent's page index, which lives in a local
//! [`ChainState`] file outside the store (beside the database, never in
//! it). The state is written only after the link is durable in the store;
//! a state that is lost, damaged or of another database means a full
//! backup next, never a guessed increment.
//!
//! Restoring a link builds its image from the chain's full backup,
//! applying each link in order into the same private temporary file; each
//! link must name, in the header of the very read that applies it, the id
//! and image hash of the image just built, and the final image must match
//! the image index hash the last link states.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};
use sqlseal_crypto::{Keyring, random_backup_id};
use sqlseal_format::header::sanitize_database_name;
use sqlseal_format::increment::{
    IncrementError, PAGE_HASH_LEN, encode_end, encode_preamble, encode_record_start, page_hash,
};
use sqlseal_format::{
    BackupId, ChainLink, Compression, CreatedAt, FormatError, Header, IncrementParser, Metadata,
    PageIndex, Trailer,
};
use sqlseal_source::{CheckLevel, Snapshot, SnapshotInfo, SnapshotSource};
use sqlseal_store::BackupStore;

use crate::create::{Container, backup_name, create_full, file_part, wait_for_check};
use crate::open::{
    ImageFile, in_background, io_err, open_container, run_check, write_image_into_file,
};
use crate::{
    BackupOptions, BackupReport, CancelFlag, EngineError, NoProgress, Progress, VerifyOptions,
    VerifyReport, list_backups,
};

/// What the next link of a chain must bind to: kept on this machine, never
/// in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainState {
    /// The database name the chain's headers carry.
    pub database: String,
    /// The chain's full backup.
    pub full: BackupId,
    /// The newest link (the full backup itself before the first increment).
    pub parent: BackupId,
    /// The newest link's image hash: the full backup's image SHA-256, or an
    /// increment's image index hash.
    pub parent_image: [u8; 32],
    /// The newest link's sequence number (0 for the full backup).
    pub sequence: u32,
    /// When the newest link was taken.
    pub parent_created: CreatedAt,
    /// The hashes of every page of the newest link's image.
    pub index: PageIndex,
}

const STATE_MAGIC: [u8; 8] = *b"SQLSCST1";
const STATE_FIXED: usize = 8 + 16 + 16 + 32 + 4 + 8 + 4 + 8 + 2;

impl ChainState {
    /// The state after a full backup whose image `index` hashes.
    pub fn after_full(report: &BackupReport, index: PageIndex) -> ChainState {
        let m = &report.header.metadata;
        ChainState {
            database: m.database.clone(),
            full: m.backup_id,
            parent: m.backup_id,
            parent_image: report.trailer.sha256,
            sequence: 0,
            parent_created: m.created,
            index,
        }
    }

    /// The state after link `sequence` of this chain, whose image `index`
    /// hashes to `image_hash`, was written as `report`.
    pub fn after_link(
        &self,
        report: &BackupReport,
        sequence: u32,
        image_hash: [u8; 32],
        index: PageIndex,
    ) -> ChainState {
        let m = &report.header.metadata;
        ChainState {
            database: m.database.clone(),
            full: self.full,
            parent: m.backup_id,
            parent_image: image_hash,
            sequence,
            parent_created: m.created,
            index,
        }
    }

    /// The binary encoding: fixed fields, the database name, the page
    /// hashes, and a SHA-256 of all that (so that a damaged file is refused,
    /// not trusted).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            STATE_FIXED + self.database.len() + self.index.hashes().len() * PAGE_HASH_LEN + 32,
        );
        self.encode_into(&mut out)
            .expect("writing to a Vec cannot fail");
        out
    }

    /// Writes [`ChainState::encode`]'s bytes to `out` as they are made,
    /// without holding them all.
    fn encode_into(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut sha = Sha256::new();
        let mut put = |bytes: &[u8]| -> std::io::Result<()> {
            sha.update(bytes);
            out.write_all(bytes)
        };
        let name = self.database.as_bytes();
        put(&STATE_MAGIC)?;
        put(&self.full.0)?;
        put(&self.parent.0)?;
        put(&self.parent_image)?;
        put(&self.sequence.to_be_bytes())?;
        put(&self.parent_created.as_microsecond().to_be_bytes())?;
        put(&self.index.page_size().to_be_bytes())?;
        put(&self.index.page_count().to_be_bytes())?;
        put(&(name.len() as u16).to_be_bytes())?;
        put(name)?;
        for hashes in self.index.hashes().chunks(4096) {
            put(hashes.as_flattened())?;
        }
        let digest: [u8; 32] = sha.finalize().into();
        out.write_all(&digest)
    }

    /// Strictly decodes [`ChainState::encode`]'s output; the reason otherwise.
    pub fn decode(bytes: &[u8]) -> Result<ChainState, String> {
        if bytes.len() < STATE_FIXED + 32 || bytes[..8] != STATE_MAGIC {
            return Err("not a sqlseal chain state file".into());
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err("its checksum does not match (damaged or cut short)".into());
        }
        let mut at = 8;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let piece = body
                .get(at..at + n)
                .ok_or_else(|| "it is shorter than its fields".to_owned())?;
            at += n;
            Ok(piece)
        };
        let id = |b: &[u8]| BackupId(b.try_into().expect("16 bytes"));
        let full = id(take(16)?);
        let parent = id(take(16)?);
        let parent_image: [u8; 32] = take(32)?.try_into().expect("32 bytes");
        let sequence = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
        let created = i64::from_be_bytes(take(8)?.try_into().expect("8 bytes"));
        let page_size = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
        let page_count = u64::from_be_bytes(take(8)?.try_into().expect("8 bytes"));
        let name_len = u16::from_be_bytes(take(2)?.try_into().expect("2 bytes"));
        let database = String::from_utf8(take(usize::from(name_len))?.to_vec())
            .map_err(|_| "its database name is not UTF-8".to_owned())?;
        let parent_created =
            CreatedAt::from_microsecond(created).ok_or("its time is out of range")?;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(format!("page size {page_size} is not valid"));
        }
        let rest = &body[at..];
        let expected = usize::try_from(page_count)
            .ok()
            .and_then(|n| n.checked_mul(PAGE_HASH_LEN));
        if expected != Some(rest.len()) {
            return Err("its page hashes do not match its page count".into());
        }
        let hashes = rest
            .chunks_exact(PAGE_HASH_LEN)
            .map(|h| h.try_into().expect("16 bytes"))
            .collect();
        Ok(ChainState {
            database,
            full,
            parent,
            parent_image,
            sequence,
            parent_created,
            index: PageIndex::from_hashes(page_size, hashes),
        })
    }

    /// Writes the state to `path` (0600), replacing the old one atomically.
    pub fn save(&self, path: &Path) -> Result<(), EngineError> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let file = sqlseal_private::private_tempfile_in(&dir, ".sqlseal-chain-")
            .map_err(io_err("creating a temporary file in", &dir))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, file.as_file());
        self.encode_into(&mut out)
            .and_then(|()| out.flush())
            .and_then(|()| {
                drop(out);
                file.as_file().sync_all()
            })
            .map_err(io_err("writing", file.path()))?;
        file.persist(path).map_err(|e| EngineError::Io {
            what: "replacing",
            path: path.to_path_buf(),
            source: e.error,
        })?;
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Whether `listed` holds, authenticated, the link this state names as
    /// the newest, at its place in the same chain: only then can an
    /// increment follow it (otherwise it would follow nothing).
    pub fn found_in(&self, listed: &[crate::ListedBackup]) -> bool {
        listed.iter().filter_map(|b| b.verified_header()).any(|h| {
            let m = &h.metadata;
            m.backup_id == self.parent
                && m.chain.map_or(m.backup_id == self.full, |l| {
                    l.full == self.full && l.sequence == self.sequence
                })
        })
    }

    /// Reads the state at `path`: `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<ChainState>, EngineError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", path)(e)),
        };
        ChainState::decode(&bytes)
            .map(Some)
            .map_err(|reason| EngineError::ChainState {
                path: path.to_path_buf(),
                reason,
            })
    }
}

/// Makes a full backup that starts a chain: the backup, and the state the
/// first increment binds to.
pub fn start_chain(
    source: &dyn SnapshotSource,
    store: &dyn BackupStore,
    options: &BackupOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<(BackupReport, ChainState), EngineError> {
    let mut index = PageIndex::new(512);
    let report = create_full(source, store, options, Some(&mut index), cancel, progress)?;
    let state = ChainState::after_full(&report, index);
    Ok((report, state))
}

/// What [`create_increment`] did.
#[derive(Debug)]
pub enum IncrementOutcome {
    /// No page changed since the parent: nothing was written, no request
    /// was made to the store.
    Unchanged,
    /// A new link, and the state the next one binds to.
    Written(Box<BackupReport>, ChainState),
}

/// The blocks of an increment's plaintext, computed from a snapshot and
/// the parent's page index as the snapshot streams.
struct IncrementBlocks<'a> {
    snapshot: &'a mut Snapshot,
    parent: &'a PageIndex,
    index: PageIndex,
    page_count: u64,
    stage: u8,
    changed: u64,
    /// The image index hash, once the end record was made.
    image_hash: [u8; 32],
}

impl Iterator for IncrementBlocks<'_> {
    type Item = Result<Vec<u8>, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let page_size = self.index.page_size();
        loop {
            match self.stage {
                0 => {
                    self.stage = 1;
                    return Some(Ok(encode_preamble(page_size, self.page_count).to_vec()));
                }
                1 => match self.snapshot.next_block() {
                    Some(Err(e)) => return Some(Err(e.into())),
                    Some(Ok(block)) => {
                        let mut out = Vec::new();
                        push_changed_pages(&mut self.index, self.parent, &block, |number, page| {
                            push_record(&mut out, number, page);
                            self.changed += 1;
                            true
                        });
                        if !out.is_empty() {
                            return Some(Ok(out));
                        }
                    }
                    None => self.stage = 2,
                },
                2 => {
                    self.stage = 3;
                    if self.index.page_count() != self.page_count {
                        return Some(Err(EngineError::Inconsistent {
                            backup: "increment".into(),
                            reason: format!(
                                "snapshot gave {} pages, expected {}",
                                self.index.page_count(),
                                self.page_count
                            ),
                        }));
                    }
                    if self.changed == 0 && self.page_count == self.parent.page_count() {
                        // Nothing to write: end the stream before its
                        // first frame (see create_increment).
                        return Some(Err(EngineError::Cancelled));
                    }
                    self.image_hash = self.index.image_hash();
                    return Some(Ok(encode_end(&self.image_hash).to_vec()));
                }
                _ => return None,
            }
        }
    }
}

/// Pushes the hashes of `block`'s pages (whole pages, following the
/// pages `index` holds) onto `index`, and hands each page whose hash is not
/// `parent`'s for the same page number to `changed(number, page)`. Stops,
/// returning false, at the first page `changed` refuses.
pub(crate) fn push_changed_pages(
    index: &mut PageIndex,
    parent: &PageIndex,
    block: &[u8],
    mut changed: impl FnMut(u64, &[u8]) -> bool,
) -> bool {
    for page in block.chunks(index.page_size() as usize) {
        let hash = page_hash(page);
        index.push(hash);
        let number = index.page_count();
        if parent.get(number) != Some(&hash) && !changed(number, page) {
            return false;
        }
    }
    true
}

/// Appends the record of page `number` to an increment's plaintext.
pub(crate) fn push_record(out: &mut Vec<u8>, number: u64, page: &[u8]) {
    // Page numbers fit u32: SQLite's limit.
    out.extend_from_slice(&encode_record_start(number as u32));
    out.extend_from_slice(page);
}

/// The name and header of the link after `state`'s newest, for a
/// snapshot described by `info`.
pub(crate) struct NextLink {
    pub(crate) name: String,
    pub(crate) metadata: Metadata,
    pub(crate) sequence: u32,
}

/// Checks that a snapshot of `database` can continue the chain `state`
/// (same database, same page size, a later time, room for one more link)
/// and names its link.
pub(crate) fn plan_link(
    database: &str,
    state: &ChainState,
    options: &BackupOptions,
    info: &SnapshotInfo,
) -> Result<NextLink, EngineError> {
    let header_name = sanitize_database_name(database);
    let broken = |reason: String| EngineError::ChainState {
        path: "in memory".into(),
        reason,
    };
    if header_name != state.database {
        return Err(broken(format!(
            "it is the chain of `{}`, not of `{header_name}`",
            state.database
        )));
    }
    let sequence = state
        .sequence
        .checked_add(1)
        .ok_or_else(|| broken("the chain has as many links as it can".into()))?;
    if info.page_size != state.index.page_size() {
        return Err(broken(format!(
            "the page size changed from {} to {} bytes",
            state.index.page_size(),
            info.page_size
        )));
    }
    let created = options
        .created_at
        .unwrap_or_else(|| CreatedAt::from_timestamp(jiff::Timestamp::now()));
    if created <= state.parent_created {
        return Err(broken(format!(
            "its newest link was made at {}, not before this one ({created})",
            state.parent_created
        )));
    }
    let metadata = Metadata {
        backup_id: random_backup_id().map_err(EngineError::Seal)?,
        created,
        database: header_name,
        page_size: info.page_size,
        method: info.method.name().to_owned(),
        compression: Compression::Lz4,
        chunk_size: options.chunk_size,
        chain: Some(ChainLink {
            full: state.full,
            parent: state.parent,
            parent_image: state.parent_image,
            sequence,
        }),
    };
    let name = backup_name(file_part(database), created)?;
    Ok(NextLink {
        name,
        metadata,
        sequence,
    })
}

/// Makes the next link of the chain `state` describes: a sealed container
/// of the pages that differ from the parent's image, found by comparing
/// every page's hash with the parent's page index in one read transaction.
/// Writes nothing (and makes no request) when no page changed. The caller
/// saves the returned state only after this returned: the link is durable
/// by then.
pub fn create_increment(
    source: &dyn SnapshotSource,
    store: &dyn BackupStore,
    options: &BackupOptions,
    state: &ChainState,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<IncrementOutcome, EngineError> {
    let started = Instant::now();
    let database = options
        .database_name
        .clone()
        .unwrap_or_else(|| source.database_name());
    let mut snapshot = source.snapshot()?;
    let info = snapshot.info().clone();
    let NextLink {
        name,
        metadata,
        sequence,
    } = plan_link(&database, state, options, &info)?;
    let mut container = Container::start(store, name, metadata, options, true)?;
    progress.start(info.image_len());
    let mut blocks = IncrementBlocks {
        snapshot: &mut snapshot,
        parent: &state.index,
        index: PageIndex::new(info.page_size),
        page_count: info.page_count,
        stage: 0,
        changed: 0,
        image_hash: [0; 32],
    };
    let sealed = container.seal_stream(&mut blocks, info.page_count, options, cancel, progress);
    let unchanged = blocks.stage == 3 && blocks.changed == 0;
    // The index and its hash as the stream computed them: not hashed again.
    let IncrementBlocks {
        index, image_hash, ..
    } = blocks;
    let (trailer, payload_digest) = match sealed {
        Err(EngineError::Cancelled) if unchanged && !cancel.is_cancelled() => {
            return Ok(IncrementOutcome::Unchanged);
        }
        other => other?,
    };
    let recorded = wait_for_check(&mut snapshot, cancel)?;
    drop(snapshot);
    let report = container.finish(trailer, &payload_digest, recorded, options, started)?;
    let next = state.after_link(&report, sequence, image_hash, index);
    Ok(IncrementOutcome::Written(Box::new(report), next))
}

/// The links from a chain's full backup to `target`, by authenticated
/// headers: names and headers, the full backup first.
fn chain_path(
    store: &dyn BackupStore,
    keyring: &Keyring,
    target: &str,
) -> Result<Vec<(String, Header)>, EngineError> {
    let listed = list_backups(store, Some(keyring))?;
    let verified: Vec<(&str, &Header)> = listed
        .iter()
        .filter_map(|b| b.verified_header().map(|h| (b.entry.name.as_str(), h)))
        .collect();
    let Some(&(_, target_header)) = verified.iter().find(|(name, _)| *name == target) else {
        let why = listed.iter().find(|b| b.entry.name == target).map_or(
            "it is not in the store".to_owned(),
            |b| match &b.check {
                crate::HeaderCheck::Refused(reason) => reason.clone(),
                _ => "its header did not authenticate".to_owned(),
            },
        );
        return Err(EngineError::Chain {
            backup: target.to_owned(),
            reason: format!("cannot restore this increment: {why}"),
        });
    };
    let mut path = vec![(target.to_owned(), target_header.clone())];
    let mut current = target_header;
    while let Some(link) = current.metadata.chain {
        let candidates: Vec<&(&str, &Header)> = verified
            .iter()
            .filter(|(_, h)| h.metadata.backup_id == link.parent)
            .collect();
        let &&(parent_name, parent) = match candidates.as_slice() {
            [one] => one,
            [] => {
                return Err(EngineError::Chain {
                    backup: path.last().expect("not empty").0.clone(),
                    reason: format!(
                        "link {} of chain {} applies to backup {}, which is not in {} (or does not authenticate); restore an earlier point or the full backup",
                        link.sequence,
                        link.full,
                        link.parent,
                        store.location()
                    ),
                });
            }
            _ => {
                return Err(EngineError::Chain {
                    backup: path.last().expect("not empty").0.clone(),
                    reason: format!(
                        "its parent {} is in the store more than once (a copied or replayed backup); remove the copies",
                        link.parent
                    ),
                });
            }
        };
        // Each step goes one link back in the same chain, so this ends.
        let parent_place = parent
            .metadata
            .chain
            .map_or((parent.metadata.backup_id, 0), |l| (l.full, l.sequence));
        if parent_place != (link.full, link.sequence - 1) {
            return Err(EngineError::Chain {
                backup: path.last().expect("not empty").0.clone(),
                reason: format!(
                    "it is link {} of chain {}, but its parent {parent_name} is not link {} of that chain",
                    link.sequence,
                    link.full,
                    link.sequence - 1
                ),
            });
        }
        path.push((parent_name.to_owned(), parent.clone()));
        current = parent;
    }
    path.reverse();
    Ok(path)
}

/// Applies increments' pages to a file as their plaintext is opened, one
/// link after another, and remembers which pages it wrote.
struct ApplyPages<'f> {
    file: &'f File,
    parser: IncrementParser,
    page_size: u64,
    bad: Option<FormatError>,
    /// Pages of consecutive numbers not yet written, from `run_start`:
    /// written with one call when the run breaks or grows to [`RUN_MAX`].
    run: Vec<u8>,
    run_start: u64,
    /// Every page number written, one bit a page.
    written: Vec<u64>,
}

/// The longest run of consecutive pages [`ApplyPages`] keeps before
/// writing it.
const RUN_MAX: usize = 1 << 20;

impl<'f> ApplyPages<'f> {
    fn new(file: &'f File, page_size: u32) -> Self {
        ApplyPages {
            file,
            parser: IncrementParser::new(page_size),
            page_size: u64::from(page_size),
            bad: None,
            run: Vec::new(),
            run_start: 0,
            written: Vec::new(),
        }
    }

    /// Starts the next link: a new parser, no failure yet.
    fn next_link(&mut self) {
        self.parser = IncrementParser::new(self.page_size as u32);
        self.bad = None;
    }

    /// Writes the pending run of pages.
    fn write_run(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if !self.run.is_empty() {
            self.file
                .write_all_at(&self.run, (self.run_start - 1) * self.page_size)?;
            self.run.clear();
        }
        Ok(())
    }

    /// Whether page `number` was written.
    fn wrote(&self, number: u64) -> bool {
        self.written
            .get((number / 64) as usize)
            .is_some_and(|word| word & (1 << (number % 64)) != 0)
    }
}

impl Write for ApplyPages<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let page_size = self.page_size;
        let mut parser = std::mem::replace(&mut self.parser, IncrementParser::new(0));
        let result = parser.feed(buf, &mut |number, page| {
            let number = u64::from(number);
            let next = self.run_start + self.run.len() as u64 / page_size;
            if self.run.is_empty() || number != next || self.run.len() >= RUN_MAX {
                self.write_run()?;
                self.run_start = number;
            }
            self.run.extend_from_slice(page);
            let word = (number / 64) as usize;
            if word >= self.written.len() {
                self.written.resize(word + 1, 0);
            }
            self.written[word] |= 1 << (number % 64);
            Ok(())
        });
        self.parser = parser;
        match result {
            Ok(()) => Ok(buf.len()),
            Err(IncrementError::Sink(e)) => Err(e),
            Err(IncrementError::Format(e)) => {
                self.bad = Some(e);
                Err(std::io::Error::other("invalid increment"))
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.write_run()
    }
}

/// The hashes of pages `numbers` (1-based, ascending) of `file`, in that
/// order, hashed on `threads` threads at once (each over its own share of
/// the numbers, reading runs of consecutive pages with one call).
fn hash_pages(
    file: &File,
    page_size: u32,
    numbers: &[u32],
    threads: usize,
) -> std::io::Result<Vec<[u8; PAGE_HASH_LEN]>> {
    use std::os::unix::fs::FileExt;
    let page = page_size as usize;
    let block_pages = ((1 << 20) / page).max(1);
    let hash_share = |numbers: &[u32]| -> std::io::Result<Vec<[u8; PAGE_HASH_LEN]>> {
        let mut hashes = Vec::with_capacity(numbers.len());
        let mut block = vec![0u8; block_pages * page];
        let mut rest = numbers;
        while let Some(&first) = rest.first() {
            // The run of consecutive numbers from `first`, at most a block.
            let run = rest
                .iter()
                .take(block_pages)
                .enumerate()
                .take_while(|&(i, &n)| u64::from(n) == u64::from(first) + i as u64)
                .count();
            let bytes = &mut block[..run * page];
            file.read_exact_at(bytes, (u64::from(first) - 1) * u64::from(page_size))?;
            hashes.extend(bytes.chunks(page).map(page_hash));
            rest = &rest[run..];
        }
        Ok(hashes)
    };
    let share = numbers.len().div_ceil(threads.clamp(1, 8)).max(1);
    let parts: Vec<std::io::Result<Vec<[u8; PAGE_HASH_LEN]>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = numbers
            .chunks(share)
            .map(|part| scope.spawn(move || hash_share(part)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a hashing thread failed")))
            })
            .collect()
    });
    let mut hashes = Vec::with_capacity(numbers.len());
    for part in parts {
        hashes.extend(part?);
    }
    Ok(hashes)
}

/// The image index of the whole file, hashed on `threads` threads.
fn index_file(file: &File, page_size: u32, threads: usize) -> std::io::Result<PageIndex> {
    let len = file.metadata()?.len();
    if len % u64::from(page_size) != 0 {
        return Err(std::io::Error::other("the image is not whole pages"));
    }
    let pages = u32::try_from(len / u64::from(page_size))
        .map_err(|_| std::io::Error::other("the image has more pages than SQLite allows"))?;
    let numbers: Vec<u32> = (1..=pages).collect();
    Ok(PageIndex::from_hashes(
        page_size,
        hash_pages(file, page_size, &numbers, threads)?,
    ))
}

/// The image index of a chain's image in `file`, of `page_count` pages:
/// `base`'s hashes (the full backup's image, hashed while the links were
/// applied) for every page no link wrote and that was never cut off by a
/// smaller page count (`low_water`: the smallest count of any link); the
/// others hashed again from the file.
fn index_after_links(
    file: &File,
    base: &PageIndex,
    apply: &ApplyPages<'_>,
    low_water: u64,
    page_count: u64,
    threads: usize,
) -> std::io::Result<PageIndex> {
    let page_size = base.page_size();
    let kept = base.page_count().min(low_water).min(page_count);
    let mut hashes: Vec<[u8; PAGE_HASH_LEN]> = base.hashes()[..kept as usize].to_vec();
    let again: Vec<u32> = (1..=page_count)
        .filter(|&n| n > kept || apply.wrote(n))
        // Page counts fit u32: the parser refuses larger ones.
        .map(|n| n as u32)
        .collect();
    let fresh = hash_pages(file, page_size, &again, threads)?;
    for (&number, hash) in again.iter().zip(fresh) {
        let i = number as usize - 1;
        if i < hashes.len() {
            hashes[i] = hash;
        } else {
            hashes.push(hash);
        }
    }
    Ok(PageIndex::from_hashes(page_size, hashes))
}

/// Builds the image of increment `name` in `file`: the chain's full backup,
/// then every link up to `name`, each checked against the one before; then
/// the final image's index hash and the integrity check options ask for.
pub(crate) fn restore_chain_into_file(
    store: &dyn BackupStore,
    name: &str,
    keyring: &Keyring,
    image: ImageFile<'_>,
    options: &VerifyOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<VerifyReport, EngineError> {
    let started = Instant::now();
    let ImageFile { file, image_use } = image;
    let path = chain_path(store, keyring, name)?;
    let (full_name, _) = &path[0];
    // Synced once, after the last link.
    let base = write_image_into_file(store, full_name, keyring, file, options, cancel, progress)?;
    // The full backup's pages go to disk while the links are applied.
    let base_synced = image_use.start_sync(file, File::sync_data)?;
    let page_size = base.header.metadata.page_size;
    // ... and are hashed: the pages no link writes need not be read again.
    let base_index = in_background(file, move |copy| index_file(copy, page_size, 1))?;
    let mut parent_id = base.header.metadata.backup_id;
    let mut parent_image = base.trailer.sha256;
    let mut parent_created = base.header.metadata.created;
    let database = base.header.metadata.database.clone();
    let mut last = None;
    let mut apply = ApplyPages::new(file.as_file(), page_size);
    let mut low_water = u64::MAX;
    for (sequence, (link_name, _)) in path.iter().enumerate().skip(1) {
        apply.next_link();
        let input = store.open(link_name)?;
        let opened = open_container(
            link_name,
            input,
            keyring,
            &mut apply,
            options.threads,
            cancel,
            &NoProgress,
        );
        if let Some(bad) = apply.bad.take() {
            return Err(EngineError::Payload {
                backup: link_name.clone(),
                source: bad,
            });
        }
        let opened = opened?;
        // The binding, decided on the header of this very read.
        let m = &opened.header.metadata;
        let expected = ChainLink {
            full: base.header.metadata.backup_id,
            parent: parent_id,
            parent_image,
            sequence: sequence as u32,
        };
        let refuse = |reason: String| EngineError::Chain {
            backup: link_name.clone(),
            reason,
        };
        match m.chain {
            Some(link) if link == expected => {}
            Some(link) if link.full != expected.full => {
                return Err(refuse(format!(
                    "it is a link of chain {}, not of {}",
                    link.full, expected.full
                )));
            }
            Some(link) => {
                return Err(refuse(format!(
                    "it is link {} applying to {} (image {}), but the image built so far is link {} {} (image {})",
                    link.sequence,
                    link.parent,
                    short_hex(&link.parent_image),
                    sequence - 1,
                    parent_id,
                    short_hex(&parent_image)
                )));
            }
            None => return Err(refuse("it is a full backup, not an increment".into())),
        }
        if m.page_size != page_size || m.database != database {
            return Err(refuse(format!(
                "it is of database `{}` with {}-byte pages, the chain of `{database}` with {page_size}-byte pages",
                m.database, m.page_size
            )));
        }
        if m.created <= parent_created {
            return Err(refuse(format!(
                "it was made at {}, not after its parent ({parent_created})",
                m.created
            )));
        }
        apply.flush().map_err(io_err("writing", file.path()))?;
        let summary = apply
            .parser
            .finish()
            .map_err(|source| EngineError::Payload {
                backup: link_name.clone(),
                source,
            })?;
        file.as_file()
            .set_len(summary.page_count * u64::from(page_size))
            .map_err(io_err("truncating", file.path()))?;
        low_water = low_water.min(summary.page_count);
        parent_id = m.backup_id;
        parent_image = summary.image_hash;
        parent_created = m.created;
        last = Some((opened, summary));
    }
    let Some((opened, summary)) = last else {
        return Err(EngineError::Chain {
            backup: name.to_owned(),
            reason: "it is not an increment".into(),
        });
    };
    // The links' pages go to disk while the image is hashed.
    let synced = image_use.start_sync(file, File::sync_all)?;
    let built = match base_index.join() {
        Ok(Ok(base_index)) => index_after_links(
            file.as_file(),
            &base_index,
            &apply,
            low_water,
            summary.page_count,
            options.threads,
        ),
        // A link cut the file short under the hashing thread: hash it all.
        _ => index_file(file.as_file(), page_size, options.threads),
    }
    .map_err(io_err("reading", file.path()))?;
    for sync in [base_synced, synced] {
        sync.wait()?;
    }
    if built.image_hash() != summary.image_hash {
        return Err(EngineError::Chain {
            backup: name.to_owned(),
            reason: format!(
                "the image built from its chain ({} pages) does not match the image hash the link states",
                built.page_count()
            ),
        });
    }
    let level = options.integrity_check.level(opened.recorded_check);
    run_check(name, file.path(), level, cancel)?;
    Ok(VerifyReport {
        name: name.to_owned(),
        header: opened.header,
        trailer: Trailer {
            db_len: summary.page_count * u64::from(page_size),
            page_count: summary.page_count,
            sha256: summary.image_hash,
        },
        recorded_check: opened.recorded_check,
        integrity_checked: level != CheckLevel::None,
        check_run: level,
        check_asked: options.integrity_check,
        seconds: started.elapsed().as_secs_f64(),
        chain: Some(ChainReport {
            full: full_name.clone(),
            links: (path.len() - 1) as u32,
        }),
    })
}

/// Where a restored increment's image came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// The chain's full backup.
    pub full: String,
    /// How many increments were applied to it.
    pub links: u32,
}

fn short_hex(bytes: &[u8; 32]) -> String {
    hex::encode(&bytes[..8])
}

/// Whether backup `name`'s header (parsed without a key: a hint for which
/// reader to use, never a decision) says it is an increment.
pub(crate) fn looks_like_increment(store: &dyn BackupStore, name: &str) -> bool {
    crate::inspect_backup(store, name).is_ok_and(|h| h.metadata.is_increment())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_state() -> impl Strategy<Value = ChainState> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            0i64..4_102_444_800_000_000,
            9u32..=16,
            prop::collection::vec(any::<[u8; 16]>(), 0..40),
            "[a-z._ -]{1,20}",
        )
            .prop_map(
                |(full, parent, image, sequence, us, ps, hashes, database)| ChainState {
                    database,
                    full: BackupId(full),
                    parent: BackupId(parent),
                    parent_image: image,
                    sequence,
                    parent_created: CreatedAt::from_microsecond(us).expect("in range"),
                    index: PageIndex::from_hashes(1 << ps, hashes),
                },
            )
    }

    proptest! {
        #[test]
        fn chain_state_round_trips(state in arb_state()) {
            prop_assert_eq!(ChainState::decode(&state.encode()).expect("decodes"), state);
        }

        #[test]
        fn any_damage_to_a_state_is_refused(state in arb_state(), at in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>()) {
            let bytes = state.encode();
            let mut flipped = bytes.clone();
            let i = at.index(flipped.len());
            flipped[i] ^= 1 << bit;
            prop_assert!(ChainState::decode(&flipped).is_err());
            let cut = cut.index(bytes.len());
            prop_assert!(ChainState::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn index_of_a_file_matches_the_pages_on_any_number_of_threads() {
        for pages in [0u32, 1, 7, 1100] {
            let mut file = tempfile::tempfile().expect("file");
            let image: Vec<u8> = (0..pages * 1024).map(|i| (i % 251) as u8).collect();
            file.write_all(&image).expect("write");
            let mut expected = PageIndex::new(1024);
            expected.push_pages(&image);
            for threads in [1, 2, 3, 8] {
                let index = index_file(&file, 1024, threads).expect("index");
                assert_eq!(index, expected, "{pages} pages on {threads} threads");
            }
        }
    }

    #[test]
    fn index_of_a_file_of_part_pages_is_refused() {
        let mut file = tempfile::tempfile().expect("file");
        file.write_all(&[7u8; 1500]).expect("write");
        assert!(index_file(&file, 1024, 2).is_err());
    }
}
