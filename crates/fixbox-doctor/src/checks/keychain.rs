use fixbox_store::Keychain;

use crate::{Check, CheckId};

pub(crate) async fn keychain() -> Check {
    match tokio::task::spawn_blocking(|| Keychain.probe()).await {
        Ok(Ok(())) => Check::ok(CheckId::Keychain, "OS keychain available: API keys and tokens are stored there"),
        Ok(Err(err)) => Check::warn(
            CheckId::Keychain,
            "no usable OS keychain: cloud models and GitHub cannot be used (Fixbox never stores keys in plain text)",
            err.to_string(),
        ),
        Err(panicked) => crate::crashed(CheckId::Keychain, &panicked),
    }
}
