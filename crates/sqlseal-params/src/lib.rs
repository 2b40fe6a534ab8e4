//! sqlseal's configuration parameters.
//!
//! So far: [`Duration`], the Go-style durations (`90s`, `24h`, `1h30m`)
//! that duration parameters are written in.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod duration;

pub use duration::{Duration, ParseDurationError};
