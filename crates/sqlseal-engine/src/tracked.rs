//! Increments that read only the pages SQLite's write-ahead log says
//! changed since the chain's newest link, instead of every page.
//!
//! An [`IncrementTracker`] pairs a [`ChangeTracker`] with the link whose
//! image its committed snapshot is. When it follows the chain's newest
//! link, an increment reads the named pages alone (plus any page past the
//! parent's end); otherwise, or when the changes are not known, or when
//! the caller asks for a scrub, it reads every page as
//! [`create_increment`](crate::create_increment) does. A scrub also proves
//! the tracking: a page that changed although the log did not name it
//! fails the increment, and the chain is started again by a full backup.
//!
//! Either way the link is the same container: the pages whose hash
//! differs from the parent's index, and the hash of the whole new index.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Instant;

use sqlseal_format::PageIndex;
use sqlseal_format::increment::{PAGE_HASH_LEN, encode_end, encode_preamble, page_hash};
use sqlseal_source::{ChangeTracker, SnapshotOptions, TrackedChanges};
use sqlseal_store::BackupStore;

use crate::chain::{
    ChainState, IncrementOutcome, NextLink, plan_link, push_changed_pages, push_record,
};
use crate::create::Container;
use crate::{BackupOptions, CancelFlag, EngineError, Progress};
use sqlseal_format::BackupId;

/// How an increment found its pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkScan {
    /// Pages read from the snapshot.
    pub pages_read: u64,
    /// Pages that differ from the parent's image (the increment's records).
    pub pages_changed: u64,
    /// Whether every page was read (the changes were not known, or a
    /// scrub was asked for).
    pub whole: bool,
    /// Why the changes were not known, when they were not.
    pub unknown_because: Option<&'static str>,
}

/// Follows one database from link to link of its chain.
#[derive(Debug)]
pub struct IncrementTracker {
    changes: ChangeTracker,
    /// The link whose image the tracker's committed snapshot is.
    link: Option<BackupId>,
    last: Option<LinkScan>,
    /// An index's allocation to build the next link's index in (see
    /// [`IncrementTracker::recycle`]).
    spare: Vec<[u8; PAGE_HASH_LEN]>,
}

impl IncrementTracker {
    /// A tracker of the database at `path`; its first increment reads
    /// every page.
    pub fn new(path: impl Into<std::path::PathBuf>, options: SnapshotOptions) -> Self {
        IncrementTracker {
            changes: ChangeTracker::new(path, options),
            link: None,
            last: None,
            spare: Vec::new(),
        }
    }

    /// Takes back a chain state that is done with (the parent of the link
    /// just made), so that the next link's index is built in its memory
    /// rather than in a new allocation of 16 bytes a page.
    pub fn recycle(&mut self, state: ChainState) {
        self.spare = state.index.into_hashes();
    }

    /// Forgets what it follows: the next increment reads every page.
    pub fn forget(&mut self) {
        self.changes.forget();
        self.link = None;
    }

    /// Ends the read transaction kept between increments (see
    /// [`ChangeTracker::release_pin`]), for a long pause.
    pub fn release_pin(&mut self) {
        self.changes.release_pin();
    }

    /// Lets SQLite restart a log that grew long (see
    /// [`ChangeTracker::settle`]); whether it may now.
    pub fn settle(&mut self) -> Result<bool, EngineError> {
        Ok(self.changes.settle()?)
    }

    /// Whether a snapshot is pinned between increments (see
    /// [`ChangeTracker`]): while it is, nothing in this process may open
    /// and close the database's files (that would end SQLite's locks).
    pub fn is_pinned(&self) -> bool {
        self.changes.is_pinned()
    }

    /// Whether nothing committed since the last increment's snapshot
    /// (see [`ChangeTracker::unchanged_since_commit`]).
    pub fn unchanged_since_last(&self) -> bool {
        self.changes.unchanged_since_commit()
    }

    /// How the last increment found its pages.
    pub fn last_scan(&self) -> Option<&LinkScan> {
        self.last.as_ref()
    }
}

/// What the producer of an increment's plaintext computed.
struct Produced {
    index: PageIndex,
    changed: u64,
    pages_read: u64,
    image_hash: [u8; 32],
}

/// Makes the next link of the chain `state` describes from the pages the
/// tracker says changed (every page when it cannot say, or when `scrub`);
/// writes nothing when no page changed. Like
/// [`create_increment`](crate::create_increment), the caller saves the
/// returned state. On an error the tracker forgets what it followed.
pub fn create_tracked_increment(
    tracker: &mut IncrementTracker,
    store: &dyn BackupStore,
    options: &BackupOptions,
    state: &ChainState,
    scrub: bool,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<IncrementOutcome, EngineError> {
    let result = tracked_increment(tracker, store, options, state, scrub, cancel, progress);
    match &result {
        Ok(IncrementOutcome::Written(_, next)) => {
            tracker.changes.commit();
            tracker.link = Some(next.parent);
        }
        Ok(IncrementOutcome::Unchanged) => {
            tracker.changes.commit();
            tracker.link = Some(state.parent);
        }
        Err(_) => tracker.forget(),
    }
    result
}

fn tracked_increment(
    tracker: &mut IncrementTracker,
    store: &dyn BackupStore,
    options: &BackupOptions,
    state: &ChainState,
    scrub: bool,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<IncrementOutcome, EngineError> {
    let started = Instant::now();
    let database = options
        .database_name
        .clone()
        .unwrap_or_else(|| sqlseal_source::database_name_of(tracker.changes.path()));
    let mut changes = tracker.changes.begin()?;
    if changes.pages.is_some() && tracker.link != Some(state.parent) {
        changes.pages = None;
        changes.unknown_because = Some("the tracker followed another link");
    }
    let NextLink {
        name,
        metadata,
        sequence,
    } = plan_link(&database, state, options, &changes.info)?;
    let mut container = Container::start(store, name, metadata, options, true)?;
    progress.start(changes.info.image_len());
    let block_size = options.chunk_size as usize;
    let spare = std::mem::take(&mut tracker.spare);
    let source = &mut tracker.changes;
    let (tx, rx) = sync_channel::<Result<Vec<u8>, EngineError>>(2);
    let (sealed, produced) = std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            let mut producer = Producer {
                tx,
                // Grown as needed: most links are a few pages.
                out: Vec::new(),
                block_size,
            };
            producer.run(source, &state.index, spare, &changes, scrub)
        });
        let sealed = container.seal_stream(
            rx.into_iter(),
            changes.info.page_count,
            options,
            cancel,
            progress,
        );
        (sealed, producer.join())
    });
    let produced = produced.map_err(|_| EngineError::Inconsistent {
        backup: "increment".into(),
        reason: "the page reader stopped unexpectedly".into(),
    })?;
    tracker.last = Some(LinkScan {
        pages_read: produced.as_ref().map_or(0, |p| p.pages_read),
        pages_changed: produced.as_ref().map_or(0, |p| p.changed),
        whole: scrub || changes.pages.is_none(),
        unknown_because: changes.unknown_because,
    });
    let unchanged = produced.as_ref().is_some_and(|p| p.changed == 0)
        && changes.info.page_count == state.index.page_count();
    let (trailer, payload_digest) = match sealed {
        Err(EngineError::Cancelled) if unchanged && !cancel.is_cancelled() => {
            if let Some(produced) = produced {
                tracker.spare = produced.index.into_hashes();
            }
            return Ok(IncrementOutcome::Unchanged);
        }
        other => other?,
    };
    let produced = produced.ok_or_else(|| EngineError::Inconsistent {
        backup: "increment".into(),
        reason: "the page reader ended without the image index".into(),
    })?;
    let recorded = crate::recorded_check(sqlseal_source::CheckLevel::None);
    let report = container.finish(trailer, &payload_digest, recorded, options, started)?;
    let next = state.after_link(&report, sequence, produced.image_hash, produced.index);
    Ok(IncrementOutcome::Written(Box::new(report), next))
}

/// Makes an increment's plaintext from a tracked snapshot, on a thread of
/// its own, and hands it on in blocks of about `block_size` bytes.
struct Producer {
    tx: SyncSender<Result<Vec<u8>, EngineError>>,
    out: Vec<u8>,
    block_size: usize,
}

impl Producer {
    /// Hands on a block; false when nobody listens any more.
    fn send(&self, block: Vec<u8>) -> bool {
        self.tx.send(Ok(block)).is_ok()
    }

    /// Ends the stream with `error`.
    fn fail(&self, error: EngineError) -> Option<Produced> {
        let _ = self.tx.send(Err(error));
        None
    }

    /// Adds a record of page `number`; sends the block once it is full.
    fn record(&mut self, number: u64, page: &[u8]) -> bool {
        push_record(&mut self.out, number, page);
        if self.out.len() < self.block_size {
            return true;
        }
        let block = std::mem::replace(&mut self.out, Vec::with_capacity(self.block_size * 2));
        self.send(block)
    }

    /// The plaintext of the increment of `changes` over `parent`: the
    /// named pages alone when they are known and no scrub was asked for,
    /// else every page (checking, when they are known, that no page the
    /// log did not name changed). `None` when it stopped early (the error,
    /// if any, went down the stream).
    fn run(
        &mut self,
        source: &mut ChangeTracker,
        parent: &PageIndex,
        spare: Vec<[u8; PAGE_HASH_LEN]>,
        changes: &TrackedChanges,
        scrub: bool,
    ) -> Option<Produced> {
        let info = &changes.info;
        if !self.send(encode_preamble(info.page_size, info.page_count).to_vec()) {
            return None;
        }
        let mut produced = Produced {
            index: PageIndex::new(info.page_size),
            changed: 0,
            pages_read: 0,
            image_hash: [0; 32],
        };
        match (&changes.pages, scrub) {
            (Some(named), false) => {
                let mut index = PageIndex::copy_into(parent, spare);
                index.truncate(info.page_count);
                let kept = parent.page_count().min(info.page_count);
                // The named pages of the parent's extent, then every page
                // past it, in order.
                let numbers = named
                    .iter()
                    .map(|&n| u64::from(n))
                    .filter(|&n| n <= kept)
                    .chain(kept + 1..=info.page_count);
                for number in numbers {
                    let page = match source.read_page(number as u32) {
                        Ok(page) => page,
                        Err(e) => return self.fail(e.into()),
                    };
                    produced.pages_read += 1;
                    let hash = page_hash(&page);
                    if number > index.page_count() {
                        index.push(hash);
                    } else if index.get(number) != Some(&hash) {
                        if let Err(e) = index.set(number, hash) {
                            return self.fail(EngineError::Inconsistent {
                                backup: "increment".into(),
                                reason: e.to_string(),
                            });
                        }
                    } else {
                        continue;
                    }
                    produced.changed += 1;
                    if !self.record(number, &page) {
                        return None;
                    }
                }
                produced.index = index;
            }
            (named, _) => {
                let mut spare = spare;
                spare.clear();
                produced.index = PageIndex::from_hashes(info.page_size, spare);
                let page_size = info.page_size as usize;
                let mut missed = None;
                let mut stopped = false;
                let read = source.read_all(self.block_size, |block| {
                    produced.pages_read += (block.len() / page_size) as u64;
                    push_changed_pages(&mut produced.index, parent, &block, |number, page| {
                        if let Some(named) = named
                            && number <= parent.page_count()
                            && named.binary_search(&(number as u32)).is_err()
                        {
                            missed = Some(number);
                            return false;
                        }
                        produced.changed += 1;
                        stopped = !self.record(number, page);
                        !stopped
                    })
                });
                if let Some(number) = missed {
                    return self.fail(EngineError::ChainState {
                        path: "the write-ahead log".into(),
                        reason: format!(
                            "page {number} changed but the log did not name it; a full backup starts a new chain"
                        ),
                    });
                }
                if stopped {
                    return None;
                }
                if let Err(e) = read {
                    return self.fail(e.into());
                }
            }
        }
        if produced.index.page_count() != info.page_count {
            return self.fail(EngineError::Inconsistent {
                backup: "increment".into(),
                reason: format!(
                    "the snapshot gave {} pages, expected {}",
                    produced.index.page_count(),
                    info.page_count
                ),
            });
        }
        if produced.changed == 0 && info.page_count == parent.page_count() {
            // Nothing to write: end the stream before its first frame.
            let _ = self.tx.send(Err(EngineError::Cancelled));
            return Some(produced);
        }
        let rest = std::mem::take(&mut self.out);
        if !rest.is_empty() && !self.send(rest) {
            return None;
        }
        produced.image_hash = produced.index.image_hash();
        if !self.send(encode_end(&produced.image_hash).to_vec()) {
            return None;
        }
        Some(produced)
    }
}
