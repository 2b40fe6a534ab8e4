//! The plaintext of an increment: the pages that changed since its parent,
//! and the hash of the whole image after applying them.
//!
//! An increment is a complete container whose header carries a `chain:`
//! line ([`crate::ChainLink`]); its payload plaintext, sealed in chunks like
//! any image, is:
//!
//! ```text
//! preamble   "SQLSINC1" || u32be page_size || u64be page_count
//! record*    u32be page_number (1-based, strictly increasing,
//!            at most page_count) || page_size bytes
//! end        u32be 0 || image index hash (32 bytes)
//! ```
//!
//! `page_count` is the image's page count after applying (a smaller count
//! than the parent's truncates the image). The image index hash commits to
//! the whole resulting image without hashing it all again for each link:
//! see [`PageIndex`]. Nothing may follow the end record.

use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};

/// The first bytes of an increment's plaintext.
pub const INCREMENT_MAGIC: [u8; 8] = *b"SQLSINC1";
/// Length of the preamble.
pub const PREAMBLE_LEN: usize = 8 + 4 + 8;
/// Bytes of SHA-256 kept per page in a [`PageIndex`].
pub const PAGE_HASH_LEN: usize = 16;
/// The context string that starts the image index hash.
pub const IMAGE_INDEX_CONTEXT: &[u8] = b"sqlseal/v2 image index\n";
/// The largest page count SQLite allows.
pub const MAX_PAGE_COUNT: u64 = 4_294_967_294;

/// The first [`PAGE_HASH_LEN`] bytes of SHA-256 of one page.
pub fn page_hash(page: &[u8]) -> [u8; PAGE_HASH_LEN] {
    let digest = Sha256::digest(page);
    let mut out = [0u8; PAGE_HASH_LEN];
    out.copy_from_slice(&digest[..PAGE_HASH_LEN]);
    out
}

/// The per-page hashes of one database image, in page order, and the
/// image index hash over them:
/// `SHA-256(IMAGE_INDEX_CONTEXT || u32be page_size || u64be page_count ||
/// page_hash(page 1) || ... || page_hash(page n))`.
///
/// Updating it after an increment costs the changed pages and one pass
/// over 16 bytes a page, not a pass over the image.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PageIndex {
    page_size: u32,
    hashes: Vec<[u8; PAGE_HASH_LEN]>,
}

impl PageIndex {
    /// An index of an empty image of pages of `page_size` bytes.
    pub fn new(page_size: u32) -> Self {
        PageIndex {
            page_size,
            hashes: Vec::new(),
        }
    }

    /// An index from its hashes, as [`PageIndex::hashes`] gave them.
    pub fn from_hashes(page_size: u32, hashes: Vec<[u8; PAGE_HASH_LEN]>) -> Self {
        PageIndex { page_size, hashes }
    }

    /// The page size.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The number of pages.
    pub fn page_count(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The per-page hashes, page 1 first.
    pub fn hashes(&self) -> &[[u8; PAGE_HASH_LEN]] {
        &self.hashes
    }

    /// The hash of page `number` (1-based), if the image has it.
    pub fn get(&self, number: u64) -> Option<&[u8; PAGE_HASH_LEN]> {
        let i = usize::try_from(number.checked_sub(1)?).ok()?;
        self.hashes.get(i)
    }

    /// Appends the next page's hash.
    pub fn push(&mut self, hash: [u8; PAGE_HASH_LEN]) {
        self.hashes.push(hash);
    }

    /// Appends every page of `block` (whole pages).
    pub fn push_pages(&mut self, block: &[u8]) {
        for page in block.chunks(self.page_size as usize) {
            self.hashes.push(page_hash(page));
        }
    }

    /// Sets page `number`'s hash (1-based); pages between the current end
    /// and `number` must already have been set or pushed.
    pub fn set(&mut self, number: u64, hash: [u8; PAGE_HASH_LEN]) -> Result<()> {
        let i = number
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i <= self.hashes.len())
            .ok_or_else(|| {
                FormatError::BadIncrement(format!(
                    "page {number} is past the end of an image of {} pages",
                    self.hashes.len()
                ))
            })?;
        if i == self.hashes.len() {
            self.hashes.push(hash);
        } else {
            self.hashes[i] = hash;
        }
        Ok(())
    }

    /// A copy of `source` made in `buffer` (whatever it held is dropped,
    /// its allocation reused): an index per link without a new allocation.
    pub fn copy_into(source: &PageIndex, mut buffer: Vec<[u8; PAGE_HASH_LEN]>) -> PageIndex {
        buffer.clear();
        buffer.extend_from_slice(&source.hashes);
        PageIndex::from_hashes(source.page_size, buffer)
    }

    /// The hashes, page 1 first, to reuse their allocation.
    pub fn into_hashes(self) -> Vec<[u8; PAGE_HASH_LEN]> {
        self.hashes
    }

    /// Keeps the first `count` pages.
    pub fn truncate(&mut self, count: u64) {
        self.hashes
            .truncate(usize::try_from(count).unwrap_or(usize::MAX));
    }

    /// The image index hash.
    pub fn image_hash(&self) -> [u8; 32] {
        let mut sha = Sha256::new();
        sha.update(IMAGE_INDEX_CONTEXT);
        sha.update(self.page_size.to_be_bytes());
        sha.update((self.hashes.len() as u64).to_be_bytes());
        for hash in &self.hashes {
            sha.update(hash);
        }
        sha.finalize().into()
    }
}

/// The preamble of an increment whose image has `page_count` pages.
pub fn encode_preamble(page_size: u32, page_count: u64) -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..8].copy_from_slice(&INCREMENT_MAGIC);
    out[8..12].copy_from_slice(&page_size.to_be_bytes());
    out[12..].copy_from_slice(&page_count.to_be_bytes());
    out
}

/// The 4 bytes before page `number`'s bytes.
pub fn encode_record_start(number: u32) -> [u8; 4] {
    number.to_be_bytes()
}

/// The end record.
pub fn encode_end(image_hash: &[u8; 32]) -> [u8; 36] {
    let mut out = [0u8; 36];
    out[4..].copy_from_slice(image_hash);
    out
}

/// The whole plaintext of an increment, in memory (for tests and tools;
/// the engine streams it).
pub fn encode_increment(
    page_size: u32,
    page_count: u64,
    pages: &[(u32, Vec<u8>)],
    image_hash: &[u8; 32],
) -> Vec<u8> {
    let mut out = encode_preamble(page_size, page_count).to_vec();
    for (number, page) in pages {
        out.extend_from_slice(&encode_record_start(*number));
        out.extend_from_slice(page);
    }
    out.extend_from_slice(&encode_end(image_hash));
    out
}

/// A page number and its bytes.
pub type Page = (u32, Vec<u8>);

/// Where [`IncrementParser::feed`] hands each whole page: its number and bytes.
pub type PageSink<'a, E> = dyn FnMut(u32, &[u8]) -> std::result::Result<(), E> + 'a;

/// What an increment's plaintext states, once parsed to its end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IncrementSummary {
    /// The page size.
    pub page_size: u32,
    /// The image's page count after applying.
    pub page_count: u64,
    /// How many pages it carries.
    pub pages: u64,
    /// The image index hash after applying.
    pub image_hash: [u8; 32],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Preamble,
    RecordStart,
    Page(u32),
    EndHash,
    Done,
}

/// A strict, streaming parser of an increment's plaintext: feed it bytes in
/// pieces of any size, and it hands out each page once it is whole.
#[derive(Debug)]
pub struct IncrementParser {
    page_size: u32,
    page_count: u64,
    state: State,
    buf: Vec<u8>,
    last_page: u32,
    pages: u64,
    image_hash: [u8; 32],
}

impl IncrementParser {
    /// A parser for an increment whose header states `page_size`.
    pub fn new(page_size: u32) -> Self {
        IncrementParser {
            page_size,
            page_count: 0,
            state: State::Preamble,
            buf: Vec::with_capacity(page_size as usize),
            last_page: 0,
            pages: 0,
            image_hash: [0; 32],
        }
    }

    /// The image's page count after applying, once the preamble was read.
    pub fn page_count(&self) -> Option<u64> {
        (self.state != State::Preamble).then_some(self.page_count)
    }

    fn want(&self) -> usize {
        match self.state {
            State::Preamble => PREAMBLE_LEN,
            State::RecordStart => 4,
            State::Page(_) => self.page_size as usize,
            State::EndHash => 32,
            State::Done => 0,
        }
    }

    /// Parses `data`, calling `page(number, bytes)` for each whole page in
    /// order. A page handed out is not yet authenticated: the caller may
    /// only use it once the container's seal verified.
    pub fn feed<E>(
        &mut self,
        mut data: &[u8],
        page: &mut PageSink<'_, E>,
    ) -> std::result::Result<(), IncrementError<E>> {
        while !data.is_empty() {
            if self.state == State::Done {
                return Err(bad("bytes follow the end record").into());
            }
            let want = self.want();
            // Whole pages straight from the input, without a copy.
            if self.buf.is_empty() && data.len() >= want {
                let (item, rest) = data.split_at(want);
                self.item(item, page)?;
                data = rest;
                continue;
            }
            let take = (want - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == want {
                let item = std::mem::take(&mut self.buf);
                let result = self.item(&item, page);
                self.buf = item;
                self.buf.clear();
                result?;
            }
        }
        Ok(())
    }

    fn item<E>(
        &mut self,
        item: &[u8],
        page: &mut PageSink<'_, E>,
    ) -> std::result::Result<(), IncrementError<E>> {
        match self.state {
            State::Preamble => {
                if item[..8] != INCREMENT_MAGIC {
                    return Err(bad("it does not start with `SQLSINC1`").into());
                }
                let page_size = u32::from_be_bytes(item[8..12].try_into().expect("4 bytes"));
                if page_size != self.page_size {
                    return Err(bad(&format!(
                        "it states pages of {page_size} bytes, its header {}",
                        self.page_size
                    ))
                    .into());
                }
                let page_count = u64::from_be_bytes(item[12..].try_into().expect("8 bytes"));
                if page_count == 0 || page_count > MAX_PAGE_COUNT {
                    return Err(bad(&format!(
                        "a page count of {page_count} is outside 1..={MAX_PAGE_COUNT}"
                    ))
                    .into());
                }
                self.page_count = page_count;
                self.state = State::RecordStart;
            }
            State::RecordStart => {
                let number = u32::from_be_bytes(item.try_into().expect("4 bytes"));
                if number == 0 {
                    self.state = State::EndHash;
                } else if number <= self.last_page {
                    return Err(bad(&format!(
                        "page {number} follows page {}: pages must be in increasing order",
                        self.last_page
                    ))
                    .into());
                } else if u64::from(number) > self.page_count {
                    return Err(bad(&format!(
                        "page {number} is past the image's {} pages",
                        self.page_count
                    ))
                    .into());
                } else {
                    self.state = State::Page(number);
                }
            }
            State::Page(number) => {
                page(number, item).map_err(IncrementError::Sink)?;
                self.last_page = number;
                self.pages += 1;
                self.state = State::RecordStart;
            }
            State::EndHash => {
                self.image_hash.copy_from_slice(item);
                self.state = State::Done;
            }
            State::Done => return Err(bad("bytes follow the end record").into()),
        }
        Ok(())
    }

    /// Ends the parse: the summary if the end record was read, an error
    /// naming what is missing otherwise.
    pub fn finish(&self) -> Result<IncrementSummary> {
        if self.state != State::Done {
            return Err(bad("it ends before its end record (truncated)"));
        }
        Ok(IncrementSummary {
            page_size: self.page_size,
            page_count: self.page_count,
            pages: self.pages,
            image_hash: self.image_hash,
        })
    }
}

fn bad(reason: &str) -> FormatError {
    FormatError::BadIncrement(reason.to_owned())
}

/// An error of [`IncrementParser::feed`]: the bytes, or the page sink.
#[derive(Debug, thiserror::Error)]
pub enum IncrementError<E> {
    /// The plaintext is not a valid increment.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The sink refused a page.
    #[error("applying a page failed")]
    Sink(E),
}

/// Parses a whole increment in memory: its summary and pages.
pub fn decode_increment(page_size: u32, data: &[u8]) -> Result<(IncrementSummary, Vec<Page>)> {
    let mut parser = IncrementParser::new(page_size);
    let mut pages = Vec::new();
    parser
        .feed(data, &mut |n, p| {
            pages.push((n, p.to_vec()));
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|e| match e {
            IncrementError::Format(e) => e,
            IncrementError::Sink(never) => match never {},
        })?;
    Ok((parser.finish()?, pages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_increment() -> impl Strategy<Value = (u32, u64, Vec<Page>, [u8; 32])> {
        (9u32..=12, 1u64..200, any::<[u8; 32]>()).prop_flat_map(|(ps, count, hash)| {
            let page_size = 1u32 << ps;
            (
                Just(page_size),
                Just(count),
                prop::collection::btree_set(1u32..=count as u32, 0..8).prop_flat_map(
                    move |numbers| {
                        numbers
                            .into_iter()
                            .map(|n| {
                                prop::collection::vec(any::<u8>(), page_size as usize)
                                    .prop_map(move |p| (n, p))
                            })
                            .collect::<Vec<_>>()
                    },
                ),
                Just(hash),
            )
        })
    }

    proptest! {
        #[test]
        fn increments_round_trip_in_any_pieces(
            (page_size, count, pages, hash) in arb_increment(),
            cuts in prop::collection::vec(1usize..5000, 0..20),
        ) {
            let bytes = encode_increment(page_size, count, &pages, &hash);
            let (summary, decoded) = decode_increment(page_size, &bytes).expect("decodes");
            prop_assert_eq!(&decoded, &pages);
            prop_assert_eq!(summary, IncrementSummary { page_size, page_count: count, pages: pages.len() as u64, image_hash: hash });
            // The same in pieces of any size.
            let mut parser = IncrementParser::new(page_size);
            let mut seen = Vec::new();
            let mut rest = &bytes[..];
            for cut in cuts {
                let (piece, tail) = rest.split_at(cut.min(rest.len()));
                parser.feed(piece, &mut |n, p| { seen.push((n, p.to_vec())); Ok::<(), ()>(()) }).expect("feeds");
                rest = tail;
            }
            parser.feed(rest, &mut |n, p| { seen.push((n, p.to_vec())); Ok::<(), ()>(()) }).expect("feeds");
            prop_assert_eq!(parser.finish().expect("ends"), summary);
            prop_assert_eq!(seen, pages);
        }

        #[test]
        fn truncated_or_extended_increments_are_refused(
            (page_size, count, pages, hash) in arb_increment(),
            cut in any::<prop::sample::Index>(),
            extra in 1u8..,
        ) {
            let bytes = encode_increment(page_size, count, &pages, &hash);
            let cut = cut.index(bytes.len());
            prop_assert!(decode_increment(page_size, &bytes[..cut]).is_err());
            let mut longer = bytes.clone();
            longer.push(extra);
            prop_assert!(decode_increment(page_size, &longer).is_err());
        }

        #[test]
        fn parse_never_panics(page_size in prop::sample::select(vec![512u32, 4096]), bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decode_increment(page_size, &bytes);
        }

        #[test]
        fn image_hash_changes_with_any_page(pages in prop::collection::vec(any::<[u8; 16]>(), 1..50), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let index = PageIndex::from_hashes(512, pages.clone());
            let mut other = pages.clone();
            let i = at.index(other.len());
            other[i][0] ^= 1 << bit;
            prop_assert_ne!(index.image_hash(), PageIndex::from_hashes(512, other).image_hash());
            let mut shorter = index.clone();
            shorter.truncate(pages.len() as u64 - 1);
            prop_assert_ne!(index.image_hash(), shorter.image_hash());
        }
    }

    #[test]
    fn bad_increments_name_the_problem() {
        let page = vec![1u8; 512];
        let err = |bytes: &[u8]| {
            decode_increment(512, bytes)
                .expect_err("refused")
                .to_string()
        };
        let good = encode_increment(512, 3, &[(2, page.clone())], &[9; 32]);
        assert!(decode_increment(512, &good).is_ok());
        assert!(err(b"SQLSINC2").contains("truncated"));
        let mut magic = good.clone();
        magic[7] = b'2';
        assert!(err(&magic).contains("SQLSINC1"));
        assert!(
            decode_increment(1024, &good)
                .expect_err("size")
                .to_string()
                .contains("1024")
        );
        let order = encode_increment(512, 3, &[(2, page.clone()), (2, page.clone())], &[9; 32]);
        assert!(err(&order).contains("increasing order"));
        let past = encode_increment(512, 3, &[(4, page.clone())], &[9; 32]);
        assert!(err(&past).contains("past the image's 3 pages"));
        let empty = encode_increment(512, 0, &[], &[9; 32]);
        assert!(err(&empty).contains("outside 1..="));
    }

    #[test]
    fn page_index_set_and_truncate() {
        let mut index = PageIndex::new(512);
        index.push_pages(&[0u8; 1024]);
        assert_eq!(index.page_count(), 2);
        index.set(3, [1; 16]).expect("appends the next page");
        assert!(index.set(5, [1; 16]).is_err());
        assert!(index.set(0, [1; 16]).is_err());
        assert_eq!(index.get(3), Some(&[1; 16]));
        assert_eq!(index.get(1), Some(&page_hash(&[0u8; 512])));
        index.truncate(1);
        assert_eq!(index.page_count(), 1);
        assert_eq!(index.get(2), None);
    }
}
