//! A random generator that is not random, for known-answer tests of HPKE.

use std::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};

/// An "RNG" that hands out a fixed ikmE, so that HPKE's sender derives its
/// ephemeral key exactly as `DeriveKeyPair(ikmE)` (and `GenerateKeyPair`
/// given those bytes) would. Every request must be for exactly as many
/// bytes as it holds.
pub struct FixedIkm(pub Vec<u8>);

impl TryRng for FixedIkm {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("only fill_bytes is used")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("only fill_bytes is used")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert_eq!(dst.len(), self.0.len(), "ikm length");
        dst.copy_from_slice(&self.0);
        Ok(())
    }
}

impl TryCryptoRng for FixedIkm {}
