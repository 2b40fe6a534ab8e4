//! The parallel chunk pipelines.
//!
//! Sealing: a producer thread cuts the image into chunks and hashes it in
//! order, worker threads compress, seal and hash frames independently, and
//! the calling thread writes frames in chunk order, folding their digests
//! into the payload digest that the seal signs. Opening is the reverse: a
//! producer splits frames (and reads the seal record after the final one),
//! workers hash, authenticate and decompress, and the calling thread hashes
//! and writes the image in order.
//!
//! Memory stays flat whatever the size of the database: at most
//! [`window`] chunks are in flight between the producer and the in-order
//! consumer (the producer takes a credit per chunk, the consumer returns it
//! when the chunk is written), which also bounds the reorder buffer.
//!
//! Every exit ends the pipeline: the consumer owns the receiving ends of the
//! queues and the credits, so returning early (an error, a cancel, a failed
//! write) drops them, the workers' sends fail, the producer's sends and
//! credit waits fail, and the scope joins. The tests exercise each exit on
//! streams much longer than the queues.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crossbeam_channel::{Receiver, Sender, bounded};
use sqlseal_format::payload::frame_digest_of;
use sqlseal_format::seal::frame_digest;
use sqlseal_format::{
    ChunkCipher, FormatError, FrameHeader, FrameReader, ImageDigest, PayloadDigest, SealRecord,
    Trailer,
};

use crate::{CancelFlag, EngineError, Progress};

/// A failure inside a pipeline, before the caller adds which backup it was.
#[derive(Debug)]
pub(crate) enum PipelineError {
    /// The input (snapshot or backup) failed.
    Input(Box<crate::EngineError>),
    /// A chunk failed a format check.
    Format(FormatError),
    /// Writing the output failed.
    Output(std::io::Error),
    /// The cancel flag was raised.
    Cancelled,
}

/// Adds the backup's name to a pipeline failure.
pub(crate) fn pipeline_error(backup: &str, e: PipelineError) -> EngineError {
    match e {
        PipelineError::Input(e) => *e,
        PipelineError::Format(source) => EngineError::Payload {
            backup: backup.to_owned(),
            source,
        },
        PipelineError::Output(e) => EngineError::Write {
            backup: backup.to_owned(),
            source: e.into(),
        },
        PipelineError::Cancelled => EngineError::Cancelled,
    }
}

/// How many chunks may wait in each queue per worker.
const QUEUE_PER_WORKER: usize = 2;

/// Chunks in flight at most, between the producer and the in-order consumer.
fn window(threads: usize) -> usize {
    threads * QUEUE_PER_WORKER * 2
}

/// The credits that bound the chunks in flight: the producer takes one per
/// chunk, the consumer gives it back once the chunk is done in order.
fn credits(threads: usize) -> (Sender<()>, Receiver<()>) {
    let n = window(threads);
    let (tx, rx) = bounded(n);
    for _ in 0..n {
        // The channel holds exactly n; these sends cannot fail or block.
        let _ = tx.send(());
    }
    (tx, rx)
}

/// Buffers handed back by their last user for the next chunk, so that a
/// pipeline does not allocate (and fault in) fresh megabytes per chunk. It
/// never holds more buffers than were in flight at once.
#[derive(Clone)]
struct Recycle(Sender<Vec<u8>>, Receiver<Vec<u8>>);

impl Recycle {
    fn new() -> Recycle {
        let (tx, rx) = crossbeam_channel::unbounded();
        Recycle(tx, rx)
    }

    /// An empty buffer: a returned one, else a new one of `capacity`.
    fn take(&self, capacity: usize) -> Vec<u8> {
        match self.1.try_recv() {
            Ok(mut buffer) => {
                buffer.clear();
                buffer
            }
            Err(_) => Vec::with_capacity(capacity),
        }
    }

    /// Hands `buffer` back for another chunk.
    fn give(&self, buffer: Vec<u8>) {
        // The pool's receiver lives as long as the sender: this cannot fail.
        let _ = self.0.send(buffer);
    }
}

struct SealJob {
    index: u64,
    data: Vec<u8>,
    trailer: Option<Trailer>,
}

/// A sealed frame from a worker: chunk index, raw length, frame bytes and
/// their digest.
type SealedFrame = (u64, usize, Result<(Vec<u8>, [u8; 32]), FormatError>);

/// Seals `blocks` (the image, in order) into frames written to `out`.
/// `payload` is the payload digest started with the salt. Returns the
/// trailer of the final chunk and the finished payload digest.
#[allow(clippy::too_many_arguments)] // the pipeline's inputs, each used once
pub(crate) fn seal_stream<I>(
    blocks: I,
    cipher: &ChunkCipher,
    page_count: u64,
    payload: PayloadDigest,
    out: &mut dyn Write,
    threads: usize,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<(Trailer, [u8; 32]), PipelineError>
where
    I: Iterator<Item = Result<Vec<u8>, crate::EngineError>> + Send,
{
    let threads = threads.max(1);
    let chunk_size = cipher.chunk_size() as usize;
    let (job_tx, job_rx) = bounded::<SealJob>(threads * QUEUE_PER_WORKER);
    let (frame_tx, frame_rx) = bounded::<SealedFrame>(threads * QUEUE_PER_WORKER);
    let (credit_tx, credit_rx) = credits(threads);
    let (chunks, frames) = (Recycle::new(), Recycle::new());

    std::thread::scope(|scope| {
        let producer_chunks = chunks.clone();
        let producer = scope.spawn(move || -> Result<Trailer, PipelineError> {
            let chunks = producer_chunks;
            let mut digest = ImageDigest::new();
            // Grown as needed: an increment is often a few pages.
            let mut pending = chunks.take(chunk_size.min(1 << 16));
            let mut index = 0u64;
            // Sends one chunk; Err when the consumer stopped (its error is
            // reported there).
            let send = |job: SealJob| -> Result<(), PipelineError> {
                credit_rx.recv().map_err(|_| PipelineError::Cancelled)?;
                job_tx.send(job).map_err(|_| PipelineError::Cancelled)
            };
            for block in blocks {
                if cancel.is_cancelled() {
                    return Err(PipelineError::Cancelled);
                }
                let block = block.map_err(|e| PipelineError::Input(Box::new(e)))?;
                let mut data = &block[..];
                while !data.is_empty() {
                    if pending.len() == chunk_size {
                        let full = std::mem::replace(&mut pending, chunks.take(chunk_size));
                        send(SealJob {
                            index,
                            data: full,
                            trailer: None,
                        })?;
                        index += 1;
                    }
                    let take = (chunk_size - pending.len()).min(data.len());
                    digest.update(&data[..take]);
                    pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                }
            }
            if cancel.is_cancelled() {
                return Err(PipelineError::Cancelled);
            }
            let trailer = digest.trailer(page_count);
            send(SealJob {
                index,
                data: pending,
                trailer: Some(trailer),
            })?;
            Ok(trailer)
        });
        for _ in 0..threads {
            let job_rx: Receiver<SealJob> = job_rx.clone();
            let frame_tx: Sender<_> = frame_tx.clone();
            let (chunks, frames) = (chunks.clone(), frames.clone());
            scope.spawn(move || {
                for job in job_rx {
                    let mut frame = frames.take(job.data.len() + 128);
                    let sealed = cipher
                        .seal(job.index, &job.data, job.trailer.as_ref(), &mut frame)
                        .map(|()| {
                            let digest = frame_digest_of(&frame);
                            (frame, digest)
                        });
                    let raw_len = job.data.len();
                    chunks.give(job.data);
                    if frame_tx.send((job.index, raw_len, sealed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(job_rx);
        drop(frame_tx);

        let written = write_in_order(frame_rx, credit_tx, &frames, payload, out, cancel, progress);
        let produced = producer.join().unwrap_or(Err(PipelineError::Cancelled));
        match (written, produced) {
            // A snapshot failure explains a short write.
            (_, Err(e @ PipelineError::Input(_))) => Err(e),
            // The consumer's error (a failed write) explains why the
            // producer stopped.
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok(digest), Ok(trailer)) => Ok((trailer, digest)),
        }
    })
}

/// The sealing consumer: writes frames in chunk order. Owns the receiving
/// end and the credits, so that returning drops them and ends the pipeline.
fn write_in_order(
    frames: Receiver<SealedFrame>,
    credits: Sender<()>,
    recycle: &Recycle,
    mut payload: PayloadDigest,
    out: &mut dyn Write,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<[u8; 32], PipelineError> {
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    for (index, raw_len, frame) in &frames {
        if cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        waiting.insert(index, (raw_len, frame));
        while let Some((raw_len, frame)) = waiting.remove(&next) {
            let (frame, digest) = frame.map_err(PipelineError::Format)?;
            out.write_all(&frame).map_err(PipelineError::Output)?;
            recycle.give(frame);
            payload.add_frame(&digest);
            progress.advance(raw_len as u64);
            let _ = credits.send(());
            next += 1;
        }
    }
    Ok(payload.finish())
}

/// A frame read from a backup, or the error that stopped reading at `index`.
struct OpenJob {
    index: u64,
    frame: Result<(FrameHeader, Vec<u8>), FormatError>,
}

/// What a worker made of a frame: the image bytes, the trailer if final,
/// and the frame's digest.
type Opened = (Vec<u8>, Option<Trailer>, [u8; 32]);

/// What a worker made of a frame at `index`.
struct OpenedChunk {
    index: u64,
    opened: Result<Opened, FormatError>,
}

/// What [`open_stream`] read: everything the seal check needs.
#[derive(Debug)]
pub(crate) struct OpenedPayload {
    /// The trailer, matched against the image written.
    pub trailer: Trailer,
    /// The digest of the salt and every frame, in order.
    pub payload_digest: [u8; 32],
    /// The seal record that followed the final frame (not yet verified).
    pub seal: SealRecord,
}

/// Opens the frames of a payload (after the salt) and writes the
/// authenticated image to `out` in order; `payload` is the payload digest
/// started with the salt. Checks the trailer against the image and reads
/// the seal record; fails on the first problem in chunk order. The caller
/// verifies the seal; until then the image must not be used.
pub(crate) fn open_stream<R: Read + Send>(
    frames: FrameReader<R>,
    cipher: &ChunkCipher,
    payload: PayloadDigest,
    out: &mut dyn Write,
    threads: usize,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<OpenedPayload, PipelineError> {
    let threads = threads.max(1);
    let (job_tx, job_rx) = bounded::<OpenJob>(threads * QUEUE_PER_WORKER);
    let (chunk_tx, chunk_rx) = bounded::<OpenedChunk>(threads * QUEUE_PER_WORKER);
    let (credit_tx, credit_rx) = credits(threads);
    let (sealed_buffers, plain_buffers) = (Recycle::new(), Recycle::new());

    std::thread::scope(|scope| {
        let producer_buffers = sealed_buffers.clone();
        let producer = scope.spawn(move || -> Result<SealRecord, PipelineError> {
            let sealed_buffers = producer_buffers;
            let mut frames = frames;
            let mut index = 0u64;
            loop {
                if cancel.is_cancelled() {
                    return Err(PipelineError::Cancelled);
                }
                credit_rx.recv().map_err(|_| PipelineError::Cancelled)?;
                let mut sealed = sealed_buffers.take(0);
                let (frame, last) = match frames.next_frame(&mut sealed) {
                    Ok(Some(header)) => (Ok((header, sealed)), header.is_final()),
                    // next_frame ends only after a final frame, handled below.
                    Ok(None) => return frames.read_seal().map_err(PipelineError::Format),
                    // A bad frame goes down the queue so that it is reported
                    // in chunk order after any earlier failure.
                    Err(e) => (Err(e), false),
                };
                let failed = frame.is_err();
                if job_tx.send(OpenJob { index, frame }).is_err() || failed {
                    return Err(PipelineError::Cancelled);
                }
                if last {
                    // The seal record follows the final frame, then the end.
                    return frames.read_seal().map_err(PipelineError::Format);
                }
                index += 1;
            }
        });
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let chunk_tx = chunk_tx.clone();
            let (sealed_buffers, plain_buffers) = (sealed_buffers.clone(), plain_buffers.clone());
            scope.spawn(move || {
                for job in job_rx {
                    let opened = job.frame.and_then(|(header, mut sealed)| {
                        let digest = frame_digest(&header.encode(), &sealed);
                        let mut plain = plain_buffers.take(header.raw_len as usize);
                        let opened = cipher.open(&header, &mut sealed, &mut plain);
                        sealed_buffers.give(sealed);
                        opened.map(|trailer| (plain, trailer, digest))
                    });
                    let chunk = OpenedChunk {
                        index: job.index,
                        opened,
                    };
                    if chunk_tx.send(chunk).is_err() {
                        return;
                    }
                }
            });
        }
        drop(job_rx);
        drop(chunk_tx);

        let read = read_in_order(
            chunk_rx,
            credit_tx,
            &plain_buffers,
            payload,
            out,
            cancel,
            progress,
        );
        let sealed = producer.join().unwrap_or(Err(PipelineError::Cancelled));
        let (trailer, payload_digest) = read?;
        Ok(OpenedPayload {
            trailer,
            payload_digest,
            seal: sealed?,
        })
    })
}

/// The opening consumer: hashes and writes the image in chunk order up to
/// and including the final chunk. Owns the receiving end and the credits,
/// so that returning drops them and ends the pipeline.
fn read_in_order(
    chunks: Receiver<OpenedChunk>,
    credits: Sender<()>,
    recycle: &Recycle,
    mut payload: PayloadDigest,
    out: &mut dyn Write,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<(Trailer, [u8; 32]), PipelineError> {
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    let mut digest = ImageDigest::new();
    for chunk in &chunks {
        if cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        waiting.insert(chunk.index, chunk.opened);
        while let Some(opened) = waiting.remove(&next) {
            let (plain, chunk_trailer, frame_digest) = opened.map_err(PipelineError::Format)?;
            payload.add_frame(&frame_digest);
            digest.update(&plain);
            out.write_all(&plain).map_err(PipelineError::Output)?;
            progress.advance(plain.len() as u64);
            recycle.give(plain);
            let _ = credits.send(());
            if let Some(trailer) = chunk_trailer {
                digest.check(&trailer).map_err(PipelineError::Format)?;
                return Ok((trailer, payload.finish()));
            }
            next += 1;
        }
    }
    if cancel.is_cancelled() {
        return Err(PipelineError::Cancelled);
    }
    // The producer sends an error item for anything wrong before the final
    // chunk, so the queue ends without one only when cancelled.
    Err(PipelineError::Format(FormatError::MissingFinal {
        chunks: next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sqlseal_format::payload::FRAME_HEADER_LEN;
    use sqlseal_format::{DataKey, PayloadWriter, RecordedCheck, SALT_LEN, SEAL_LEN};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    const SALT: [u8; SALT_LEN] = [4; SALT_LEN];
    const CS: u32 = 4096;

    fn key() -> DataKey {
        DataKey::from_bytes([9; 32])
    }

    fn seal_record() -> [u8; SEAL_LEN] {
        SealRecord {
            check: RecordedCheck::None,
            signature: [5; 64],
        }
        .encode()
    }

    fn image(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i / 7) as u8).wrapping_mul(seed) ^ (i as u8 & seed))
            .collect()
    }

    /// Bytes that lz4 cannot shrink, so that every chunk is full size.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// The payload (salt, frames, seal record) and its digest, sealed in parallel.
    fn parallel_seal(
        data: &[u8],
        block: usize,
        chunk_size: u32,
        threads: usize,
    ) -> (Vec<u8>, [u8; 32]) {
        let cipher = ChunkCipher::new(&key(), &SALT, chunk_size).expect("cipher");
        let blocks: Vec<_> = data.chunks(block.max(1)).map(|b| Ok(b.to_vec())).collect();
        let mut out = SALT.to_vec();
        let (_, digest) = seal_stream(
            blocks.into_iter(),
            &cipher,
            5,
            PayloadDigest::new(&SALT),
            &mut out,
            threads,
            &CancelFlag::new(),
            &crate::NoProgress,
        )
        .expect("seal");
        out.extend_from_slice(&seal_record());
        (out, digest)
    }

    fn open_with(
        payload: &[u8],
        chunk_size: u32,
        threads: usize,
        out: &mut dyn Write,
        cancel: &CancelFlag,
    ) -> Result<OpenedPayload, PipelineError> {
        let cipher = ChunkCipher::new(&key(), &SALT, chunk_size).expect("cipher");
        let frames = FrameReader::new(&payload[SALT_LEN..], chunk_size).expect("frames");
        open_stream(
            frames,
            &cipher,
            PayloadDigest::new(&SALT),
            out,
            threads,
            cancel,
            &crate::NoProgress,
        )
    }

    fn parallel_open(
        payload: &[u8],
        chunk_size: u32,
        threads: usize,
    ) -> Result<(Vec<u8>, OpenedPayload), PipelineError> {
        let mut out = Vec::new();
        let opened = open_with(payload, chunk_size, threads, &mut out, &CancelFlag::new())?;
        Ok((out, opened))
    }

    fn message(r: Result<(Vec<u8>, OpenedPayload), PipelineError>) -> String {
        match r {
            Ok(_) => "opened".into(),
            Err(PipelineError::Format(e)) => e.to_string(),
            Err(other) => format!("{other:?}"),
        }
    }

    /// Runs `f` on a thread and fails the test if it does not return in
    /// `limit`: a pipeline that hangs must fail, not hang the test suite.
    fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("the pipeline did not return within {limit:?}"))
    }

    fn frames_of(payload: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = &payload[SALT_LEN..payload.len() - SEAL_LEN];
        while !rest.is_empty() {
            let h = FrameHeader::decode(rest[..FRAME_HEADER_LEN].try_into().expect("17"));
            let len = FRAME_HEADER_LEN + h.sealed_len as usize;
            out.push(rest[..len].to_vec());
            rest = &rest[len..];
        }
        out
    }

    fn reassemble(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = SALT.to_vec();
        for f in frames {
            out.extend_from_slice(f);
        }
        out.extend_from_slice(&seal_record());
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn parallel_and_sequential_agree(len in 0usize..40_000, block in 1usize..9000, threads in 1usize..5, seed in any::<u8>()) {
            let data = image(len, seed);
            // Parallel writer, parallel reader.
            let (sealed, digest) = parallel_seal(&data, block, CS, threads);
            let (back, opened) = parallel_open(&sealed, CS, threads).expect("opens");
            prop_assert_eq!(&back, &data);
            prop_assert_eq!(opened.trailer.page_count, 5);
            prop_assert_eq!(opened.payload_digest, digest);
            prop_assert_eq!(opened.seal, SealRecord::decode(&seal_record()).expect("seal"));
            // The one-thread writer produces the same bytes and digest.
            let mut w = PayloadWriter::new(Vec::new(), &key(), SALT, CS).expect("writer");
            w.write_image(&data).expect("write");
            let (seq, trailer, seq_digest) = w.finish(5).expect("finish");
            prop_assert_eq!(&seq[..], &sealed[..sealed.len() - SEAL_LEN], "both writers produce the same bytes");
            prop_assert_eq!(seq_digest, digest);
            prop_assert_eq!(trailer, opened.trailer);
        }

        #[test]
        fn any_flip_or_cut_is_refused(len in 0usize..20_000, at in any::<prop::sample::Index>(), cut in any::<bool>(), bit in 0u8..8) {
            let data = image(len, 3);
            let (mut sealed, digest) = parallel_seal(&data, 3000, CS, 2);
            // Flips and cuts in the frames fail the pipeline; flips in the
            // seal record's signature are caught by the signature check,
            // which here means the digest or the record changes.
            let at = SALT_LEN + at.index(sealed.len() - SALT_LEN);
            if cut { sealed.truncate(at); } else { sealed[at] ^= 1 << bit; }
            match parallel_open(&sealed, CS, 2) {
                Err(_) => {}
                Ok((_, opened)) => {
                    prop_assert!(!cut, "a cut payload opened");
                    prop_assert!(opened.payload_digest != digest
                        || opened.seal != SealRecord::decode(&seal_record()).expect("seal"),
                        "a flipped payload opened with the same digest and seal");
                }
            }
        }
    }

    #[test]
    fn structural_attacks_get_distinct_errors() {
        let data: Vec<u8> = (0..3 * CS as usize + 100)
            .map(|i| (i % 251) as u8)
            .collect();
        let (sealed, _) = parallel_seal(&data, 5000, CS, 2);
        let f = frames_of(&sealed);
        assert_eq!(f.len(), 4);
        let err = |frames: &[Vec<u8>]| message(parallel_open(&reassemble(frames), CS, 2));

        let swapped = [f[0].clone(), f[2].clone(), f[1].clone(), f[3].clone()];
        assert_eq!(
            err(&swapped),
            "chunk 2 found where chunk 1 belongs: dropped or reordered chunk"
        );
        let dup = [
            f[0].clone(),
            f[0].clone(),
            f[1].clone(),
            f[2].clone(),
            f[3].clone(),
        ];
        assert_eq!(
            err(&dup),
            "chunk 0 appears again where chunk 1 belongs: duplicated or reordered chunk"
        );
        let mut no_final = SALT.to_vec();
        for frame in &f[..3] {
            no_final.extend_from_slice(frame);
        }
        assert_eq!(
            message(parallel_open(&no_final, CS, 2)),
            "truncated payload: the file ends after 3 chunk(s) without the final chunk"
        );
        let two_final = [
            f[0].clone(),
            f[1].clone(),
            f[2].clone(),
            f[3].clone(),
            f[3].clone(),
        ];
        assert_eq!(
            err(&two_final),
            "a second final chunk follows final chunk 3"
        );
        let mut garbage = reassemble(&f);
        garbage.push(0);
        assert_eq!(
            message(parallel_open(&garbage, CS, 2)),
            "unexpected data after the seal record (final chunk 3)"
        );
        let mut flipped = f.clone();
        flipped[1][FRAME_HEADER_LEN + 5] ^= 0x40;
        assert_eq!(
            err(&flipped),
            "chunk 1 failed authentication: the backup is corrupted or was tampered with"
        );
        let mut cut = reassemble(&f);
        cut.truncate(cut.len() - SEAL_LEN - 1);
        assert_eq!(
            message(parallel_open(&cut, CS, 2)),
            "truncated payload: the file ends inside chunk 3"
        );
        let mut short_seal = reassemble(&f);
        short_seal.truncate(short_seal.len() - 1);
        assert_eq!(
            message(parallel_open(&short_seal, CS, 2)),
            "truncated payload: the file ends inside the seal record"
        );
    }

    #[test]
    fn first_error_in_chunk_order_is_reported() {
        let data = noise(10 * CS as usize);
        let (mut sealed, _) = parallel_seal(&data, CS as usize, CS, 2);
        // Corrupt chunk 2's body and cut the file inside chunk 8.
        let frame_len = (sealed.len() - SALT_LEN - SEAL_LEN) / 10;
        sealed[SALT_LEN + 2 * frame_len + 40] ^= 1;
        sealed.truncate(SALT_LEN + 8 * frame_len + 5);
        match parallel_open(&sealed, CS, 4) {
            Err(PipelineError::Format(FormatError::ChunkAuth { index })) => assert_eq!(index, 2),
            other => panic!("expected chunk 2 to fail first, got {}", message(other)),
        }
    }

    /// A stream far longer than the queues and the credit window.
    const LONG: usize = 300;

    #[test]
    fn corruption_in_an_early_chunk_of_a_long_stream_ends_the_pipeline() {
        let (sealed, _) = parallel_seal(&noise(LONG * CS as usize), CS as usize, CS, 2);
        let frame_len = (sealed.len() - SALT_LEN - SEAL_LEN) / LONG;
        for chunk in [0usize, 1, LONG / 10] {
            let mut bad = sealed.clone();
            bad[SALT_LEN + chunk * frame_len + FRAME_HEADER_LEN + 3] ^= 0x01;
            let started = Instant::now();
            let r = within(Duration::from_secs(20), move || {
                message(parallel_open(&bad, CS, 2))
            });
            assert_eq!(
                r,
                format!(
                    "chunk {chunk} failed authentication: the backup is corrupted or was tampered with"
                )
            );
            assert!(started.elapsed() < Duration::from_secs(20));
        }
    }

    #[test]
    fn cancellation_mid_open_ends_the_pipeline() {
        let (sealed, _) = parallel_seal(&noise(LONG * CS as usize), CS as usize, CS, 2);
        let cancel = CancelFlag::new();
        // An output that raises the flag once a tenth of the image is written.
        struct CancelAfter(usize, CancelFlag);
        impl Write for CancelAfter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 = self.0.saturating_sub(buf.len());
                if self.0 == 0 {
                    self.1.cancel();
                }
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let r = within(Duration::from_secs(20), move || {
            let mut out = CancelAfter(LONG * CS as usize / 10, cancel.clone());
            open_with(&sealed, CS, 2, &mut out, &cancel).map(|_| ())
        });
        assert!(matches!(r, Err(PipelineError::Cancelled)), "{r:?}");
    }

    /// An output that fails like a full disk after `0` bytes.
    struct FailAfter(usize);

    impl Write for FailAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 < buf.len() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "no space left",
                ));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_output_ends_the_open_pipeline() {
        let (sealed, _) = parallel_seal(&noise(LONG * CS as usize), CS as usize, CS, 2);
        let r = within(Duration::from_secs(20), move || {
            open_with(
                &sealed,
                CS,
                2,
                &mut FailAfter(3 * CS as usize),
                &CancelFlag::new(),
            )
            .map(|_| ())
        });
        assert!(
            matches!(r, Err(PipelineError::Output(ref e)) if e.kind() == std::io::ErrorKind::StorageFull),
            "{r:?}"
        );
    }

    #[test]
    fn a_failing_output_ends_the_seal_pipeline() {
        let r = within(Duration::from_secs(20), || {
            let cipher = ChunkCipher::new(&key(), &SALT, CS).expect("cipher");
            let blocks = (0..LONG).map(|i| Ok(noise(CS as usize + i)));
            seal_stream(
                blocks,
                &cipher,
                0,
                PayloadDigest::new(&SALT),
                &mut FailAfter(5 * CS as usize),
                2,
                &CancelFlag::new(),
                &crate::NoProgress,
            )
            .map(|_| ())
        });
        assert!(matches!(r, Err(PipelineError::Output(_))), "{r:?}");
    }

    #[test]
    fn cancellation_mid_seal_ends_the_pipeline() {
        let cancel = CancelFlag::new();
        let flag = cancel.clone();
        let r = within(Duration::from_secs(20), move || {
            let cipher = ChunkCipher::new(&key(), &SALT, CS).expect("cipher");
            let mut n = 0;
            let blocks = std::iter::from_fn(move || {
                n += 1;
                if n == LONG / 10 {
                    flag.cancel();
                }
                (n < LONG).then(|| Ok(noise(CS as usize)))
            });
            seal_stream(
                blocks,
                &cipher,
                0,
                PayloadDigest::new(&SALT),
                &mut Vec::new(),
                2,
                &cancel,
                &crate::NoProgress,
            )
            .map(|_| ())
        });
        assert!(matches!(r, Err(PipelineError::Cancelled)), "{r:?}");
    }

    #[test]
    fn chunks_in_flight_are_bounded() {
        // A producer that records how far it ran ahead of the consumer.
        let threads = 2;
        let ahead = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        struct Slow(std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl Write for Slow {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(1));
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let cipher = ChunkCipher::new(&key(), &SALT, CS).expect("cipher");
        let (a, w) = (ahead.clone(), written.clone());
        let mut produced = 0usize;
        let blocks = std::iter::from_fn(move || {
            produced += 1;
            let lead = produced.saturating_sub(w.load(std::sync::atomic::Ordering::SeqCst));
            a.fetch_max(lead, std::sync::atomic::Ordering::SeqCst);
            (produced <= 100).then(|| Ok(noise(CS as usize)))
        });
        seal_stream(
            blocks,
            &cipher,
            0,
            PayloadDigest::new(&SALT),
            &mut Slow(written),
            threads,
            &CancelFlag::new(),
            &crate::NoProgress,
        )
        .expect("seal");
        // Credits, plus the chunk being cut, plus one frame's write count lag.
        let bound = window(threads) + 3;
        assert!(
            ahead.load(std::sync::atomic::Ordering::SeqCst) <= bound,
            "producer ran {} chunks ahead",
            ahead.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
}
