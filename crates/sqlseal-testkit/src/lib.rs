//! Fixtures shared by the tests of the sqlseal crates, and nothing else:
//! this crate is a dev-dependency only and is never published.
//!
//! - [`db`]: WAL databases of N rows, row counting, a database with an
//!   index and the damage that breaks it.
//! - [`keys`]: key files, made in-process ([`write_key`]) or by the real
//!   binary ([`keygen`]).
//! - [`process`]: child processes under deadlines ([`Proc`], [`run`]) and
//!   waiting for an event ([`wait_until`]), so that a hang fails a test
//!   instead of hanging the suite.
//! - [`header`]: a planted copy of a backup whose header nobody signed.
//! - [`writer`]: a writer that commits to a database while a test works.
//! - [`s3s`]: a real S3 server (`s3s-fs`) on the loopback interface.
//! - [`rng`]: a fixed ikmE for HPKE known-answer tests ([`FixedIkm`]).
//!
//! Every helper panics (with a message) when its fixture cannot be made:
//! a test cannot go on without it.

pub mod db;
pub mod header;
pub mod keys;
pub mod process;
pub mod rng;
pub mod s3s;
pub mod writer;

pub use db::{
    add_rows, damage_index, db_tag_and_rows, indexed_db, insert_rows, make_random_db, rows,
};
pub use header::{PLANTED, plant_future};
pub use keys::{keygen, write_key};
pub use process::{Outcome, Proc, bin, p, run, sqlseal, stderr, stdout, wait_until};
pub use rng::FixedIkm;
pub use writer::Writer;
