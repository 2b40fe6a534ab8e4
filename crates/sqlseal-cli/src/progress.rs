//! One progress bar for create, verify and restore, on stderr when it is a
//! terminal and nothing otherwise: a label, bytes done of a known total,
//! rate and ETA, ending at 100% on success.
//!
//! `create` counts image bytes: the engine announces the image's length
//! (`Progress::start`) and reports each chunk. Reading a backup has no
//! image length until the trailer, at the very end, so `verify` and
//! `restore` count the stored bytes instead: the total is the backup's size
//! in the store, and [`Counted`] advances the bar as its bytes are read.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sqlseal_engine::Progress;
use sqlseal_store::{BackupEntry, BackupStore, BackupWriter, StoreError};

/// An indicatif bar behind the engine's [`Progress`] trait.
pub struct Bar {
    bar: Option<ProgressBar>,
    label: &'static str,
    /// Whether the engine's image-byte reports move the bar (create), or
    /// only the stored bytes read through [`Counted`] (verify, restore).
    image_bytes: bool,
}

impl Bar {
    /// A bar for `create`, labelled `label`, moved by the engine's image bytes.
    pub fn new(label: &'static str) -> Self {
        Bar::with_target(label, true, terminal())
    }

    /// A bar for reading a backup of `total` stored bytes; reads through
    /// [`Counted`] move it, the engine's image-byte reports do not.
    pub fn reading(label: &'static str, total: u64) -> Self {
        let bar = Bar::with_target(label, false, terminal());
        bar.start_bar(total);
        bar
    }

    fn with_target(
        label: &'static str,
        image_bytes: bool,
        target: Option<ProgressDrawTarget>,
    ) -> Self {
        let bar = target.map(|target| {
            let bar = ProgressBar::with_draw_target(None, target);
            let style = ProgressStyle::with_template(
                "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label);
            bar
        });
        Bar {
            bar,
            label,
            image_bytes,
        }
    }

    fn start_bar(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_message(self.label);
            bar.enable_steady_tick(Duration::from_millis(200));
        }
    }

    /// The operation succeeded: show the bar full and leave it on screen.
    pub fn done(&self) {
        if let Some(bar) = &self.bar {
            if let Some(total) = bar.length() {
                bar.set_position(total);
            }
            bar.finish();
        }
    }

    /// `store` with reads of backups counted on this bar.
    pub fn count<'a>(&'a self, store: &'a dyn BackupStore) -> Counted<'a> {
        Counted { store, bar: self }
    }
}

/// The bar draws only on a terminal.
fn terminal() -> Option<ProgressDrawTarget> {
    std::io::stderr()
        .is_terminal()
        .then(ProgressDrawTarget::stderr)
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        if self.image_bytes {
            self.start_bar(total);
        }
    }

    fn advance(&self, bytes: u64) {
        if let (true, Some(bar)) = (self.image_bytes, &self.bar) {
            bar.inc(bytes);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        // A failure or a cancel: no half-full bar left behind.
        if let Some(bar) = &self.bar
            && !bar.is_finished()
        {
            bar.finish_and_clear();
        }
    }
}

/// A store whose backup reads advance a [`Bar`] by the bytes read.
#[derive(Debug)]
pub struct Counted<'a> {
    store: &'a dyn BackupStore,
    bar: &'a Bar,
}

impl std::fmt::Debug for Bar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bar").field("label", &self.label).finish()
    }
}

struct CountingReader {
    inner: Box<dyn Read + Send>,
    bar: ProgressBar,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl BackupStore for Counted<'_> {
    fn location(&self) -> String {
        self.store.location()
    }

    fn list(&self) -> Result<Vec<BackupEntry>, StoreError> {
        self.store.list()
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let inner = self.store.open(name)?;
        Ok(match &self.bar.bar {
            Some(bar) => Box::new(CountingReader {
                inner,
                bar: bar.clone(),
            }),
            None => inner,
        })
    }

    fn create(&self, name: &str) -> Result<Box<dyn BackupWriter>, StoreError> {
        self.store.create(name)
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.store.delete(name)
    }

    fn clean_stale(&self, age: Duration) -> Result<usize, StoreError> {
        self.store.clean_stale(age)
    }

    fn local_path(&self, name: &str) -> Option<PathBuf> {
        self.store.local_path(name)
    }

    fn write_buffer_bytes(&self) -> u64 {
        self.store.write_buffer_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn hidden(label: &'static str, image_bytes: bool) -> Bar {
        Bar::with_target(label, image_bytes, Some(ProgressDrawTarget::hidden()))
    }

    fn state(bar: &Bar) -> (u64, Option<u64>, bool) {
        let b = bar.bar.as_ref().expect("a bar");
        (b.position(), b.length(), b.is_finished())
    }

    #[test]
    fn create_counts_image_bytes_and_ends_full() {
        let bar = hidden("backup", true);
        bar.start(1000);
        bar.advance(400);
        bar.advance(600);
        assert_eq!(state(&bar), (1000, Some(1000), false));
        bar.done();
        assert_eq!(state(&bar), (1000, Some(1000), true));
    }

    #[test]
    fn reading_counts_stored_bytes_not_image_bytes_and_ends_full() {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = "app.db-x.sqlseal";
        std::fs::write(dir.path().join(name), vec![7u8; 5000]).expect("write");
        let store = sqlseal_store::LocalStore::new(dir.path());
        let bar = hidden("verify", false);
        bar.start_bar(5000);
        // The engine reports image bytes and may call start: ignored.
        bar.start(123);
        bar.advance(99_999);
        assert_eq!(state(&bar), (0, Some(5000), false));
        let counted = bar.count(&store);
        let mut bytes = Vec::new();
        counted
            .open(name)
            .expect("open")
            .read_to_end(&mut bytes)
            .expect("read");
        assert_eq!(bytes.len(), 5000);
        assert_eq!(state(&bar), (5000, Some(5000), false));
        bar.done();
        assert_eq!(state(&bar), (5000, Some(5000), true));
    }

    #[test]
    fn done_fills_a_bar_that_stopped_short() {
        let bar = hidden("verify", false);
        bar.start_bar(5000);
        bar.done();
        assert_eq!(state(&bar), (5000, Some(5000), true));
    }

    #[test]
    fn no_terminal_no_bar() {
        let bar = Bar::with_target("backup", true, None);
        bar.start(10);
        bar.advance(10);
        bar.done();
        assert!(bar.bar.is_none());
    }
}
