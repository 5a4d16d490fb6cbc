//! The parts of a desktop shell the app talks to over the D-Bus session bus, which Xvfb has none of: a
//! tray host (`org.kde.StatusNotifierWatcher`, where tray icons register) and a notification server
//! (`org.freedesktop.Notifications`). They speak the same protocol a desktop's panel does, and keep
//! what the app told them: the tray menu is read back from the app over D-Bus as a panel reads it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, interface, message::Header};

/// A notification the app showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub app: String,
    pub summary: String,
    pub body: String,
}

/// An entry of the tray's menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    pub id: i32,
    pub label: String,
    pub enabled: bool,
}

/// A tray item the app registered: its bus name and object path.
#[derive(Debug, Clone)]
struct Item {
    service: String,
    path: String,
}

#[derive(Debug, Default)]
struct Seen {
    items: Vec<Item>,
    notifications: Vec<Notification>,
}

/// The shell, serving on the session bus until dropped. One at a time: the names are the bus's.
#[derive(Debug)]
pub struct Shell {
    connection: Connection,
    seen: Arc<Mutex<Seen>>,
}

struct Watcher(Arc<Mutex<Seen>>);

#[interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    /// `service` is an object path on the caller's connection (AppIndicator) or a bus name (KDE).
    fn register_status_notifier_item(&self, service: &str, #[zbus(header)] header: Header<'_>) {
        let sender = header.sender().map(ToString::to_string).unwrap_or_default();
        let (service, path) = if service.starts_with('/') {
            (sender, service.to_string())
        } else {
            (service.to_string(), "/StatusNotifierItem".to_string())
        };
        lock(&self.0).items.push(Item { service, path });
    }

    fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        lock(&self.0).items.iter().map(|i| format!("{}{}", i.service, i.path)).collect()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

struct Notifications(Arc<Mutex<Seen>>);

#[interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut seen = lock(&self.0);
        seen.notifications.push(Notification { app: app_name, summary, body });
        u32::try_from(seen.notifications.len()).unwrap_or(u32::MAX)
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        ("fixbox-test-shell".into(), "fixbox".into(), "1".into(), "1.2".into())
    }

    fn close_notification(&self, _id: u32) {}
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shell {
    /// Serves on the session bus of `DBUS_SESSION_BUS_ADDRESS`.
    pub async fn start() -> Result<Self> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let connection = zbus::connection::Builder::session()?
            .name("org.kde.StatusNotifierWatcher")?
            .name("org.freedesktop.Notifications")?
            .serve_at("/StatusNotifierWatcher", Watcher(Arc::clone(&seen)))?
            .serve_at("/org/freedesktop/Notifications", Notifications(Arc::clone(&seen)))?
            .build()
            .await
            .context("serve a tray host and a notification server on the D-Bus session bus")?;
        Ok(Self { connection, seen })
    }

    pub fn notifications(&self) -> Vec<Notification> {
        lock(&self.seen).notifications.clone()
    }

    /// The tray menu's entries, as the app serves them now.
    pub async fn tray_menu(&self) -> Result<Vec<MenuEntry>> {
        let reply = self.menu().await?.call_method("GetLayout", &(0i32, -1i32, Vec::<&str>::new())).await?;
        let (_revision, layout): (u32, Node) = reply.body().deserialize()?;
        let mut entries = Vec::new();
        collect(layout, &mut entries)?;
        Ok(entries)
    }

    /// Waits until the tray menu has an entry whose label contains `text`; returns the menu.
    pub async fn tray_menu_with(&self, text: &str, within: Duration) -> Result<Vec<MenuEntry>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let menu = self.tray_menu().await;
            if let Ok(menu) = &menu
                && menu.iter().any(|e| e.label.contains(text))
            {
                return Ok(menu.clone());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the tray menu never showed {text:?}: {menu:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the tray menu's entry labelled `label`, as a panel does.
    pub async fn click(&self, label: &str) -> Result<()> {
        let menu = self.tray_menu().await?;
        let entry = menu.iter().find(|e| e.label == label).with_context(|| format!("no {label:?} in {menu:?}"))?;
        let now = u32::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs())?;
        self.menu().await?.call_method("Event", &(entry.id, "clicked", Value::from(0i32), now)).await?;
        Ok(())
    }

    /// The app's tray menu, over D-Bus.
    async fn menu(&self) -> Result<zbus::Proxy<'static>> {
        let item = lock(&self.seen).items.last().cloned().context("no tray icon registered")?;
        let sni =
            zbus::Proxy::new(&self.connection, item.service.clone(), item.path, "org.kde.StatusNotifierItem").await?;
        let menu: OwnedObjectPath = sni.get_property("Menu").await.context("the tray item's menu")?;
        Ok(zbus::Proxy::new(&self.connection, item.service, menu, "com.canonical.dbusmenu").await?)
    }
}

/// A dbusmenu layout node: its id, its properties, and its children, each a variant holding a node.
type Node = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

fn collect((id, properties, children): Node, entries: &mut Vec<MenuEntry>) -> Result<()> {
    if let Some(label) = properties.get("label") {
        let label = String::try_from(label.try_clone()?)?;
        let enabled = match properties.get("enabled") {
            Some(enabled) => bool::try_from(enabled)?,
            None => true,
        };
        // `_` marks a mnemonic.
        entries.push(MenuEntry { id, label: label.replace('_', ""), enabled });
    }
    for child in children {
        let child: Node = child.try_into()?;
        collect(child, entries)?;
    }
    Ok(())
}
