//! The individual checks. Each turns what it finds, good or bad, into a [`Check`]; none of them fails.

mod data_dir;
mod docker;
mod engines;
mod hardware;
mod keychain;

pub(crate) use data_dir::data_dir;
pub(crate) use docker::docker;
pub(crate) use engines::engines;
pub(crate) use hardware::hardware;
pub(crate) use keychain::keychain;

/// Bytes as a person reads them: `23.4 GiB`.
pub(crate) fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}
