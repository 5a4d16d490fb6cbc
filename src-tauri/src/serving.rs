//! The engine this app runs, and the registry of every engine Fixbox runs (the app's, the CLI's): what
//! the commands, the tray and the app's shutdown share.

use fixbox_engine::{Registry, RunningEngine};

use crate::error::IpcError;

/// The engine this window started, if any.
#[derive(Debug, Default)]
pub struct Serving(pub(crate) tokio::sync::Mutex<Option<RunningEngine>>);

impl Serving {
    /// Stops the engine this window started and waits until it is gone (the app is closing).
    pub async fn stop(&self) {
        if let Some(engine) = self.0.lock().await.take() {
            engine.stop().await;
        }
    }
}

/// The state files of the engines Fixbox runs, in its data folder.
pub fn engine_registry() -> Result<Registry, IpcError> {
    Ok(Registry::new(fixbox_store::data_dir()?))
}
