//! Reading SQLite's write-ahead log: which pages the transactions that
//! committed after a known frame wrote.
//!
//! The format is SQLite's (<https://sqlite.org/fileformat2.html#walformat>):
//! a 32-byte header (magic, version, page size, checkpoint sequence, two
//! salts, a checksum of the first 24 bytes), then frames of a 24-byte
//! header (page number, the database size in pages for the frame that
//! commits a transaction and 0 for the others, the salts, a running
//! checksum) and one page. A frame is valid when its salts are the
//! header's and its checksum continues the chain from the frame before; a
//! transaction is committed once its commit frame is valid. Frames past the
//! last valid commit frame (a transaction being written, or left over from
//! an earlier generation of the log) are never reported.
//!
//! A [`WalPosition`] names a commit frame of one generation of the log by
//! the generation's salts, the frame's index and the checksum after it, so
//! that reading can resume there without reading the log from its start.

use std::collections::BTreeSet;
use std::io::{self, Read, Seek, SeekFrom};

/// Bytes in the log's header.
pub const WAL_HEADER_LEN: usize = 32;
/// Bytes in a frame's header.
pub const FRAME_HEADER_LEN: usize = 24;
const MAGIC_LITTLE_ENDIAN: u32 = 0x377f_0682;
const MAGIC_BIG_ENDIAN: u32 = 0x377f_0683;
const VERSION: u32 = 3_007_000;

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// SQLite's WAL checksum of `data` (a multiple of 8 bytes), continuing
/// from `seed`: pairs of 32-bit words, big-endian when `big_endian`.
pub fn wal_checksum(big_endian: bool, data: &[u8], seed: [u32; 2]) -> [u32; 2] {
    let [mut s1, mut s2] = seed;
    for pair in data.chunks_exact(8) {
        let (a, b) = if big_endian {
            (be32(&pair[..4]), be32(&pair[4..]))
        } else {
            (
                u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]),
                u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]),
            )
        };
        s1 = s1.wrapping_add(a).wrapping_add(s2);
        s2 = s2.wrapping_add(b).wrapping_add(s1);
    }
    [s1, s2]
}

/// A valid WAL header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalHeader {
    /// The database page size.
    pub page_size: u32,
    /// Whether checksums read words big-endian.
    pub big_endian: bool,
    /// The generation's salts, as stored.
    pub salts: [u8; 8],
    /// The header's checksum: the seed of the first frame's.
    pub checksum: [u32; 2],
}

impl WalHeader {
    /// Parses a header; `None` unless it is complete, of a known magic and
    /// version, of a valid page size, and its checksum matches.
    pub fn parse(bytes: &[u8]) -> Option<WalHeader> {
        let bytes = bytes.get(..WAL_HEADER_LEN)?;
        let big_endian = match be32(&bytes[0..4]) {
            MAGIC_LITTLE_ENDIAN => false,
            MAGIC_BIG_ENDIAN => true,
            _ => return None,
        };
        if be32(&bytes[4..8]) != VERSION {
            return None;
        }
        let page_size = be32(&bytes[8..12]);
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return None;
        }
        let checksum = wal_checksum(big_endian, &bytes[..24], [0, 0]);
        if checksum != [be32(&bytes[24..28]), be32(&bytes[28..32])] {
            return None;
        }
        let mut salts = [0u8; 8];
        salts.copy_from_slice(&bytes[16..24]);
        Some(WalHeader {
            page_size,
            big_endian,
            salts,
            checksum,
        })
    }

    /// The position before the generation's first frame.
    pub fn start(&self) -> WalPosition {
        WalPosition {
            salts: self.salts,
            frame: 0,
            checksum: self.checksum,
            big_endian: self.big_endian,
            page_size: self.page_size,
        }
    }

    /// Whether this generation directly follows `earlier`'s: SQLite adds
    /// one to the first salt each time it restarts the log.
    pub fn follows(&self, earlier: &WalPosition) -> bool {
        be32(&self.salts[..4]) == be32(&earlier.salts[..4]).wrapping_add(1)
    }
}

/// A commit frame of one generation of the log (or the generation's start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalPosition {
    /// The generation's salts.
    pub salts: [u8; 8],
    /// The index of the frame (1 for the first), 0 for the start.
    pub frame: u32,
    /// The running checksum after that frame.
    pub checksum: [u32; 2],
    /// Whether checksums read words big-endian.
    pub big_endian: bool,
    /// The page size.
    pub page_size: u32,
}

impl WalPosition {
    /// Whether this position is in the generation `header` starts.
    pub fn in_generation(&self, header: &WalHeader) -> bool {
        self.salts == header.salts
            && self.big_endian == header.big_endian
            && self.page_size == header.page_size
    }

    fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.page_size)
    }
}

/// What reading committed frames found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalCommits {
    /// The last valid commit frame read (`from` when there was none).
    pub position: WalPosition,
    /// The database's size in pages after that commit, if one was read.
    pub page_count: Option<u32>,
    /// How many committed frames were read.
    pub frames: u64,
}

/// Reads the log's header; `None` when the log is shorter than a header
/// or its header is not valid (no log, an empty one, or a damaged one).
pub fn read_wal_header<R: Read + Seek>(wal: &mut R) -> io::Result<Option<WalHeader>> {
    wal.seek(SeekFrom::Start(0))?;
    let mut bytes = [0u8; WAL_HEADER_LEN];
    match wal.read_exact(&mut bytes) {
        Ok(()) => Ok(WalHeader::parse(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the frames after `from` up to the last valid commit frame of the
/// same generation, adding the page numbers that committed transactions
/// wrote to `pages`. Stops at the first frame that is missing, torn, of
/// another generation or breaks the checksum chain; the frames of a
/// transaction without a valid commit frame are left out.
pub fn read_commits<R: Read + Seek>(
    wal: &mut R,
    from: WalPosition,
    pages: &mut BTreeSet<u32>,
) -> io::Result<WalCommits> {
    let frame_len = from.frame_len();
    let offset = WAL_HEADER_LEN as u64 + u64::from(from.frame) * frame_len;
    wal.seek(SeekFrom::Start(offset))?;
    let mut reader = io::BufReader::with_capacity(256 << 10, wal);
    let mut frame = vec![0u8; frame_len as usize];
    let mut committed = WalCommits {
        position: from,
        page_count: None,
        frames: 0,
    };
    let mut checksum = from.checksum;
    let mut index = from.frame;
    let mut open: Vec<u32> = Vec::new();
    loop {
        match reader.read_exact(&mut frame) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let (head, page) = frame.split_at(FRAME_HEADER_LEN);
        let page_number = be32(&head[0..4]);
        if page_number == 0 || head[8..16] != from.salts {
            break;
        }
        let next = wal_checksum(from.big_endian, &head[..8], checksum);
        let next = wal_checksum(from.big_endian, page, next);
        if next != [be32(&head[16..20]), be32(&head[20..24])] {
            break;
        }
        let Some(following) = index.checked_add(1) else {
            break;
        };
        checksum = next;
        index = following;
        open.push(page_number);
        let commit = be32(&head[4..8]);
        if commit != 0 {
            committed.frames += open.len() as u64;
            pages.extend(open.drain(..));
            committed.page_count = Some(commit);
            committed.position = WalPosition {
                frame: index,
                checksum,
                ..from
            };
        }
    }
    Ok(committed)
}

/// Bytes of one copy of SQLite's WAL-index header at the start of the
/// `-shm` file; two copies follow each other.
pub const WAL_INDEX_HEADER_LEN: usize = 48;

/// SQLite's own view of the log, from the WAL-index header in the `-shm`
/// file: what a reader starting now would see. Written in the machine's
/// byte order, twice; a reader trusts it only when both copies agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalIndexHeader {
    /// The last valid frame (0 when the log is empty).
    pub last_frame: u32,
    /// The database size in pages.
    pub page_count: u32,
    /// The running checksum after the last valid frame.
    pub frame_checksum: [u32; 2],
    /// The log's salts, as stored in its header.
    pub salts: [u8; 8],
}

impl WalIndexHeader {
    /// Parses the first 96 bytes of a `-shm` file; `None` unless both
    /// copies agree and say they are initialised.
    pub fn parse(bytes: &[u8]) -> Option<WalIndexHeader> {
        let first = bytes.get(..WAL_INDEX_HEADER_LEN)?;
        let second = bytes.get(WAL_INDEX_HEADER_LEN..2 * WAL_INDEX_HEADER_LEN)?;
        if first != second || first[12] != 1 {
            return None;
        }
        let ne = |at: usize| {
            u32::from_ne_bytes([first[at], first[at + 1], first[at + 2], first[at + 3]])
        };
        let mut salts = [0u8; 8];
        salts.copy_from_slice(&first[32..40]);
        Some(WalIndexHeader {
            last_frame: ne(16),
            page_count: ne(20),
            frame_checksum: [ne(24), ne(28)],
            salts,
        })
    }

    /// Whether a reader starting now sees exactly the log up to `position`.
    pub fn agrees_with(&self, position: &WalPosition) -> bool {
        self.last_frame == position.frame
            && (position.frame == 0
                || (self.salts == position.salts && self.frame_checksum == position.checksum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    /// A log as SQLite writes it: `transactions` of (page, byte) frames,
    /// the last frame of each committing the transaction.
    fn make_wal(big_endian: bool, page_size: u32, transactions: &[Vec<(u32, u8)>]) -> Vec<u8> {
        let magic = if big_endian {
            MAGIC_BIG_ENDIAN
        } else {
            MAGIC_LITTLE_ENDIAN
        };
        let mut wal = Vec::new();
        wal.extend_from_slice(&magic.to_be_bytes());
        wal.extend_from_slice(&VERSION.to_be_bytes());
        wal.extend_from_slice(&page_size.to_be_bytes());
        wal.extend_from_slice(&7u32.to_be_bytes());
        wal.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut checksum = wal_checksum(big_endian, &wal, [0, 0]);
        wal.extend_from_slice(&checksum[0].to_be_bytes());
        wal.extend_from_slice(&checksum[1].to_be_bytes());
        let mut size = 0u32;
        for transaction in transactions {
            for (i, &(page, byte)) in transaction.iter().enumerate() {
                size = size.max(page);
                let commit = if i + 1 == transaction.len() { size } else { 0 };
                let mut head = Vec::new();
                head.extend_from_slice(&page.to_be_bytes());
                head.extend_from_slice(&commit.to_be_bytes());
                let data = vec![byte; page_size as usize];
                checksum = wal_checksum(big_endian, &head, checksum);
                checksum = wal_checksum(big_endian, &data, checksum);
                head.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
                head.extend_from_slice(&checksum[0].to_be_bytes());
                head.extend_from_slice(&checksum[1].to_be_bytes());
                wal.extend_from_slice(&head);
                wal.extend_from_slice(&data);
            }
        }
        wal
    }

    fn arb_transactions() -> impl Strategy<Value = Vec<Vec<(u32, u8)>>> {
        prop::collection::vec(prop::collection::vec((1u32..40, any::<u8>()), 1..5), 0..8)
    }

    proptest! {
        /// Written frames read back: every committed page, from the start
        /// or resuming after any commit, in either byte order.
        #[test]
        fn committed_pages_read_back(transactions in arb_transactions(), big_endian: bool, split in any::<prop::sample::Index>()) {
            let wal = make_wal(big_endian, 512, &transactions);
            let header = read_wal_header(&mut Cursor::new(&wal)).expect("reads").expect("a header");
            let mut all = BTreeSet::new();
            let whole = read_commits(&mut Cursor::new(&wal), header.start(), &mut all).expect("reads");
            let expected: BTreeSet<u32> = transactions.iter().flatten().map(|f| f.0).collect();
            prop_assert_eq!(&all, &expected);
            let frames: usize = transactions.iter().map(Vec::len).sum();
            prop_assert_eq!(whole.frames, frames as u64);
            prop_assert_eq!(whole.position.frame as usize, frames);

            // Resume after the first `cut` transactions.
            let cut = if transactions.is_empty() { 0 } else { split.index(transactions.len() + 1) };
            let mut first = BTreeSet::new();
            let upto = read_commits(&mut Cursor::new(make_wal(big_endian, 512, &transactions[..cut])), header.start(), &mut first).expect("reads");
            let mut rest = BTreeSet::new();
            let end = read_commits(&mut Cursor::new(&wal), upto.position, &mut rest).expect("reads");
            prop_assert_eq!(end.position, whole.position);
            let later: BTreeSet<u32> = transactions[cut..].iter().flatten().map(|f| f.0).collect();
            prop_assert_eq!(rest, later);
        }

        /// Damage anywhere stops the reading at the last commit before it:
        /// nothing after a broken frame is ever reported.
        #[test]
        fn damage_ends_the_committed_part(transactions in arb_transactions(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut wal = make_wal(false, 512, &transactions);
            let frame_len = FRAME_HEADER_LEN + 512;
            let at = at.index(wal.len());
            wal[at] ^= 1 << bit;
            let Some(header) = read_wal_header(&mut Cursor::new(&wal)).expect("reads") else {
                prop_assert!(at < WAL_HEADER_LEN);
                return Ok(());
            };
            let mut pages = BTreeSet::new();
            let read = read_commits(&mut Cursor::new(&wal), header.start(), &mut pages).expect("reads");
            if at >= WAL_HEADER_LEN {
                let damaged_frame = ((at - WAL_HEADER_LEN) / frame_len) as u32 + 1;
                prop_assert!(read.position.frame < damaged_frame);
            }
            let mut before = 0usize;
            let mut expected = BTreeSet::new();
            for t in &transactions {
                if before + t.len() > read.position.frame as usize { break; }
                before += t.len();
                expected.extend(t.iter().map(|f| f.0));
            }
            prop_assert_eq!(pages, expected);
        }

        /// No input makes the reader panic.
        #[test]
        fn any_bytes_are_read_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(Some(header)) = read_wal_header(&mut Cursor::new(&bytes)) {
                let mut pages = BTreeSet::new();
                let _ = read_commits(&mut Cursor::new(&bytes), header.start(), &mut pages);
            }
        }
    }

    #[test]
    fn a_transaction_without_its_commit_frame_is_left_out() {
        let mut wal = make_wal(false, 512, &[vec![(1, 1)], vec![(2, 2), (3, 3)]]);
        // Drop the last frame: the second transaction never committed.
        wal.truncate(wal.len() - (FRAME_HEADER_LEN + 512));
        let header = read_wal_header(&mut Cursor::new(&wal))
            .expect("reads")
            .expect("a header");
        let mut pages = BTreeSet::new();
        let read = read_commits(&mut Cursor::new(&wal), header.start(), &mut pages).expect("reads");
        assert_eq!(pages, BTreeSet::from([1]));
        assert_eq!(read.position.frame, 1);
        assert_eq!(read.page_count, Some(1));
    }

    #[test]
    fn the_wal_index_header_is_read_only_when_both_copies_agree() {
        let mut copy = [0u8; WAL_INDEX_HEADER_LEN];
        copy[12] = 1;
        copy[16..20].copy_from_slice(&5u32.to_ne_bytes());
        copy[20..24].copy_from_slice(&9u32.to_ne_bytes());
        copy[24..28].copy_from_slice(&11u32.to_ne_bytes());
        copy[28..32].copy_from_slice(&12u32.to_ne_bytes());
        copy[32..40].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let both = [copy, copy].concat();
        let header = WalIndexHeader::parse(&both).expect("agrees");
        assert_eq!(header.last_frame, 5);
        assert_eq!(header.page_count, 9);
        let position = WalPosition {
            salts: [1, 2, 3, 4, 5, 6, 7, 8],
            frame: 5,
            checksum: [11, 12],
            big_endian: false,
            page_size: 512,
        };
        assert!(header.agrees_with(&position));
        assert!(!header.agrees_with(&WalPosition {
            frame: 6,
            ..position
        }));
        assert!(!header.agrees_with(&WalPosition {
            checksum: [11, 13],
            ..position
        }));
        let mut torn = both.clone();
        torn[60] ^= 1;
        assert_eq!(WalIndexHeader::parse(&torn), None);
        let mut uninitialised = both;
        uninitialised[12] = 0;
        uninitialised[60] = 0;
        assert_eq!(WalIndexHeader::parse(&uninitialised), None);
        assert_eq!(WalIndexHeader::parse(&copy), None);
    }

    #[test]
    fn the_next_generation_follows_by_its_first_salt() {
        let wal = make_wal(false, 512, &[]);
        let header = read_wal_header(&mut Cursor::new(&wal))
            .expect("reads")
            .expect("a header");
        let mut next = header;
        next.salts[3] += 1;
        next.salts[7] ^= 0x55;
        assert!(next.follows(&header.start()));
        assert!(!header.follows(&header.start()));
        assert!(!next.start().in_generation(&header));
    }
}
