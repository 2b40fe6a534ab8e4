//! The parallel chunk pipelines.
//!
//! Sealing: a producer thread cuts the image into chunks and hashes it in
//! order, worker threads compress and seal chunks independently, and the
//! calling thread writes frames in chunk order. Opening is the reverse: a
//! producer splits frames, workers authenticate and decompress, and the
//! calling thread hashes and writes the image in order. Queues are bounded,
//! so memory stays flat whatever the size of the database.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crossbeam_channel::{Receiver, Sender, bounded};
use sqlseal_format::{ChunkCipher, FormatError, FrameHeader, FrameReader, ImageDigest, Trailer};

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

struct SealJob {
    index: u64,
    data: Vec<u8>,
    trailer: Option<Trailer>,
}

/// Seals `blocks` (the image, in order) into frames written to `out`.
/// Returns the trailer of the final chunk.
pub(crate) fn seal_stream<I>(
    blocks: I,
    cipher: &ChunkCipher,
    page_count: u64,
    out: &mut dyn Write,
    threads: usize,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<Trailer, PipelineError>
where
    I: Iterator<Item = Result<Vec<u8>, crate::EngineError>> + Send,
{
    let threads = threads.max(1);
    let chunk_size = cipher.chunk_size() as usize;
    let (job_tx, job_rx) = bounded::<SealJob>(threads * QUEUE_PER_WORKER);
    let (frame_tx, frame_rx) = bounded::<SealedFrame>(threads * QUEUE_PER_WORKER);

    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<Trailer, PipelineError> {
            let mut digest = ImageDigest::new();
            let mut pending = Vec::with_capacity(chunk_size);
            let mut index = 0u64;
            for block in blocks {
                if cancel.is_cancelled() {
                    return Err(PipelineError::Cancelled);
                }
                let block = block.map_err(|e| PipelineError::Input(Box::new(e)))?;
                let mut data = &block[..];
                while !data.is_empty() {
                    if pending.len() == chunk_size {
                        let full = std::mem::replace(&mut pending, Vec::with_capacity(chunk_size));
                        let job = SealJob {
                            index,
                            data: full,
                            trailer: None,
                        };
                        if job_tx.send(job).is_err() {
                            // The writer stopped; its error is reported there.
                            return Err(PipelineError::Cancelled);
                        }
                        index += 1;
                    }
                    let take = (chunk_size - pending.len()).min(data.len());
                    digest.update(&data[..take]);
                    pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                }
            }
            let trailer = digest.trailer(page_count);
            let job = SealJob {
                index,
                data: pending,
                trailer: Some(trailer),
            };
            if job_tx.send(job).is_err() {
                return Err(PipelineError::Cancelled);
            }
            Ok(trailer)
        });
        for _ in 0..threads {
            let job_rx: Receiver<SealJob> = job_rx.clone();
            let frame_tx: Sender<_> = frame_tx.clone();
            scope.spawn(move || {
                for job in job_rx {
                    let mut frame = Vec::with_capacity(job.data.len() + 128);
                    let sealed = cipher
                        .seal(job.index, &job.data, job.trailer.as_ref(), &mut frame)
                        .map(|()| frame);
                    if frame_tx.send((job.index, job.data.len(), sealed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(job_rx);
        drop(frame_tx);

        let written = write_in_order(&frame_rx, out, progress);
        drop(frame_rx);
        let produced = producer.join().unwrap_or(Err(PipelineError::Cancelled));
        match (written, produced) {
            // A producer error (snapshot failed, cancelled) explains a short write.
            (_, Err(e @ (PipelineError::Input(_) | PipelineError::Cancelled))) => Err(e),
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(trailer)) => Ok(trailer),
        }
    })
}

/// A sealed frame from a worker: chunk index, raw length, frame bytes.
type SealedFrame = (u64, usize, Result<Vec<u8>, FormatError>);

fn write_in_order(
    frames: &Receiver<SealedFrame>,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<(), PipelineError> {
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    for (index, raw_len, frame) in frames {
        waiting.insert(index, (raw_len, frame));
        while let Some((raw_len, frame)) = waiting.remove(&next) {
            let frame = frame.map_err(PipelineError::Format)?;
            out.write_all(&frame).map_err(PipelineError::Output)?;
            progress.advance(raw_len as u64);
            next += 1;
        }
    }
    Ok(())
}

/// A frame read from a backup, or the error that stopped reading at `index`.
struct OpenJob {
    index: u64,
    frame: Result<(FrameHeader, Vec<u8>), FormatError>,
}

/// What a worker made of a frame.
struct OpenedChunk {
    index: u64,
    opened: Result<(Vec<u8>, Option<Trailer>), FormatError>,
}

/// Opens the frames of a payload (after the salt) and writes the
/// authenticated image to `out` in order. Returns the trailer, checked
/// against the image; fails on the first problem in chunk order.
pub(crate) fn open_stream<R: Read + Send>(
    frames: FrameReader<R>,
    cipher: &ChunkCipher,
    out: &mut dyn Write,
    threads: usize,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<Trailer, PipelineError> {
    let threads = threads.max(1);
    let (job_tx, job_rx) = bounded::<OpenJob>(threads * QUEUE_PER_WORKER);
    let (chunk_tx, chunk_rx) = bounded::<OpenedChunk>(threads * QUEUE_PER_WORKER);

    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut frames = frames;
            let mut index = 0u64;
            loop {
                if cancel.is_cancelled() {
                    return;
                }
                let mut sealed = Vec::new();
                let frame = match frames.next_frame(&mut sealed) {
                    Ok(Some(header)) => Ok((header, sealed)),
                    // The end, right after the final chunk.
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                // After the final frame the loop reads once more: next_frame
                // then returns None at the end or an error for trailing data.
                let stop = frame.is_err();
                if job_tx.send(OpenJob { index, frame }).is_err() || stop {
                    return;
                }
                index += 1;
            }
        });
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let chunk_tx = chunk_tx.clone();
            scope.spawn(move || {
                for job in job_rx {
                    let opened = job.frame.and_then(|(header, mut sealed)| {
                        let mut plain = Vec::with_capacity(header.raw_len as usize);
                        cipher
                            .open(&header, &mut sealed, &mut plain)
                            .map(|trailer| (plain, trailer))
                    });
                    if chunk_tx
                        .send(OpenedChunk {
                            index: job.index,
                            opened,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(job_rx);
        drop(chunk_tx);

        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut digest = ImageDigest::new();
        let mut trailer = None;
        for chunk in &chunk_rx {
            if cancel.is_cancelled() {
                return Err(PipelineError::Cancelled);
            }
            waiting.insert(chunk.index, chunk.opened);
            while let Some(opened) = waiting.remove(&next) {
                let (plain, chunk_trailer) = opened.map_err(PipelineError::Format)?;
                digest.update(&plain);
                out.write_all(&plain).map_err(PipelineError::Output)?;
                progress.advance(plain.len() as u64);
                if let Some(t) = chunk_trailer {
                    std::mem::take(&mut digest)
                        .check(&t)
                        .map_err(PipelineError::Format)?;
                    trailer = Some(t);
                }
                next += 1;
            }
        }
        if cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        // The producer sends an error item for anything wrong after the final
        // chunk, and stops without one only at a clean end.
        trailer.ok_or(PipelineError::Format(FormatError::MissingFinal {
            chunks: next,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sqlseal_format::{DataKey, PayloadReader, PayloadWriter, SALT_LEN};

    const SALT: [u8; SALT_LEN] = [4; SALT_LEN];

    fn key() -> DataKey {
        DataKey::from_bytes([9; 32])
    }

    fn image(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i / 7) as u8).wrapping_mul(seed) ^ (i as u8 & seed))
            .collect()
    }

    fn parallel_seal(data: &[u8], block: usize, chunk_size: u32, threads: usize) -> Vec<u8> {
        let cipher = ChunkCipher::new(&key(), &SALT, chunk_size).expect("cipher");
        let blocks: Vec<_> = data.chunks(block.max(1)).map(|b| Ok(b.to_vec())).collect();
        let mut out = SALT.to_vec();
        seal_stream(
            blocks.into_iter(),
            &cipher,
            5,
            &mut out,
            threads,
            &CancelFlag::new(),
            &crate::NoProgress,
        )
        .expect("seal");
        out
    }

    fn parallel_open(
        payload: &[u8],
        chunk_size: u32,
        threads: usize,
    ) -> Result<(Vec<u8>, Trailer), PipelineError> {
        let cipher = ChunkCipher::new(&key(), &SALT, chunk_size).expect("cipher");
        let frames = FrameReader::new(&payload[SALT_LEN..], chunk_size).expect("frames");
        let mut out = Vec::new();
        let t = open_stream(
            frames,
            &cipher,
            &mut out,
            threads,
            &CancelFlag::new(),
            &crate::NoProgress,
        )?;
        Ok((out, t))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn parallel_and_sequential_agree(len in 0usize..40_000, block in 1usize..9000, threads in 1usize..5, seed in any::<u8>()) {
            let data = image(len, seed);
            let cs = 4096;
            // Parallel writer, sequential reader.
            let sealed = parallel_seal(&data, block, cs, threads);
            let mut back = Vec::new();
            let t = PayloadReader::new(&sealed[..], &key(), cs).expect("reader").copy_to(&mut back).expect("opens");
            prop_assert_eq!(&back, &data);
            prop_assert_eq!(t.page_count, 5);
            // Sequential writer, parallel reader.
            let mut w = PayloadWriter::new(Vec::new(), &key(), SALT, cs).expect("writer");
            w.write_image(&data).expect("write");
            let (seq, _) = w.finish(5).expect("finish");
            prop_assert_eq!(&seq, &sealed, "both writers produce the same bytes");
            let (back, t2) = parallel_open(&seq, cs, threads).expect("opens");
            prop_assert_eq!(back, data);
            prop_assert_eq!(t2, t);
        }

        #[test]
        fn parallel_open_refuses_any_flip_or_cut(len in 0usize..20_000, at in any::<prop::sample::Index>(), cut in any::<bool>()) {
            let data = image(len, 3);
            let mut sealed = parallel_seal(&data, 3000, 4096, 2);
            let at = SALT_LEN + at.index(sealed.len() - SALT_LEN);
            if cut { sealed.truncate(at); } else { sealed[at] ^= 0x10; }
            prop_assert!(parallel_open(&sealed, 4096, 2).is_err());
        }
    }

    #[test]
    fn first_error_in_chunk_order_is_reported() {
        let data = image(10 * 4096, 5);
        let mut sealed = parallel_seal(&data, 4096, 4096, 2);
        // Corrupt chunk 2's body and cut the file inside chunk 8.
        let frame_len = (sealed.len() - SALT_LEN) / 10;
        sealed[SALT_LEN + 2 * frame_len + 40] ^= 1;
        sealed.truncate(SALT_LEN + 8 * frame_len + 5);
        match parallel_open(&sealed, 4096, 4) {
            Err(PipelineError::Format(FormatError::ChunkAuth { index })) => assert_eq!(index, 2),
            other => panic!(
                "expected chunk 2 to fail first, got {:?}",
                other.map(|(_, t)| t)
            ),
        }
    }

    #[test]
    fn cancelled_seal_stops() {
        let cipher = ChunkCipher::new(&key(), &SALT, 4096).expect("cipher");
        let cancel = CancelFlag::new();
        cancel.cancel();
        let blocks = (0..100).map(|_| Ok(vec![0u8; 4096]));
        let r = seal_stream(
            blocks,
            &cipher,
            0,
            &mut Vec::new(),
            2,
            &cancel,
            &crate::NoProgress,
        );
        assert!(matches!(r, Err(PipelineError::Cancelled)));
    }
}
