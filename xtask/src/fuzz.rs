//! `cargo xtask fuzz`: placeholder until the fuzz targets are set up.

/// Runs each fuzz target for `seconds`.
pub fn run(_seconds: u64) -> anyhow::Result<()> {
    anyhow::bail!("fuzzing is not set up yet")
}
