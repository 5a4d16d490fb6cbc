//! The Tauri commands, one module per domain, each named `domain_verb`.

pub mod doctor;
pub mod fix;
pub mod hardware;
pub mod sessions;
