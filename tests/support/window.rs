//! The desktop app in a real window on a virtual display (Xvfb), driven over WebDriver by
//! tauri-driver + WebKitWebDriver, as the desktop tests and the viewer benchmark use it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::{ChildGuard, VirtualDisplay, free_port, wait_for_port, workspace_bin};

/// The app in a real window on a virtual display, with its data in `data`, driven over WebDriver.
#[derive(Debug)]
pub struct Window {
    client: fantoccini::Client,
    driver: ChildGuard,
    _display: VirtualDisplay,
}

impl Window {
    pub async fn open(data: &Path, out: &Path) -> Result<Self> {
        Self::open_with_env(data, out, &[]).await
    }

    /// [`Window::open`] with more environment variables for the app (where it downloads from).
    pub async fn open_with_env(data: &Path, out: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let app = workspace_bin("fixbox-desktop")?;
        let display = VirtualDisplay::start()?;
        let (port, native_port) = (free_port()?, free_port()?);
        let driver = Command::new("tauri-driver")
            .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
            .env("DISPLAY", &display.display)
            .env("FIXBOX_DATA_DIR", data)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(out.join("tauri-driver.log"))?)
            .spawn()
            .context("cannot start tauri-driver: scripts/setup installs it (cargo install tauri-driver)")?;
        let mut driver = ChildGuard::new("tauri-driver", driver);
        // tauri-driver listens at once but drops requests until its WebKitWebDriver child listens too.
        wait_for_port(port, &mut driver, Duration::from_secs(30))?;
        wait_for_port(native_port, &mut driver, Duration::from_secs(30))?;

        let mut caps = serde_json::Map::new();
        caps.insert("tauri:options".into(), serde_json::json!({ "application": app }));
        // Plain HTTP: tauri-driver listens on loopback only.
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await?;
        if let Some(session) = client.session_id().await? {
            displays().insert(session, display.display.clone());
        }
        Ok(Self { client, driver, _display: display })
    }

    /// The X display the window is on (`:93`), for another app started beside it.
    pub fn display(&self) -> &str {
        &self._display.display
    }

    /// tauri-driver's process id: the app and its WebView processes are its descendants.
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    /// Runs `checks`, then closes the WebDriver session (also when a check failed, so the app exits
    /// with the driver). A WebKit call that never answers (seen with WEBKIT_DISABLE_DMABUF_RENDERER=1:
    /// screenshots hang) fails the test instead of hanging CI.
    pub async fn check<F: Future<Output = Result<()>>>(
        self,
        checks: impl FnOnce(fantoccini::Client) -> F,
    ) -> Result<()> {
        self.check_within(Duration::from_secs(180), checks).await
    }

    /// [`Window::check`] with checks that may take up to `limit`.
    pub async fn check_within<F: Future<Output = Result<()>>>(
        self,
        limit: Duration,
        checks: impl FnOnce(fantoccini::Client) -> F,
    ) -> Result<()> {
        let result = tokio::time::timeout(limit, checks(self.client.clone())).await.unwrap_or_else(|_| {
            Err(anyhow::anyhow!("the window stopped answering WebDriver within {} s", limit.as_secs()))
        });
        if let Ok(Some(session)) = self.client.session_id().await {
            displays().remove(&session);
        }
        self.client.close().await?;
        result
    }
}

/// The X display of each open WebDriver session, so a screenshot taken with only the client in hand
/// reads the right one.
fn displays() -> std::sync::MutexGuard<'static, std::collections::HashMap<String, String>> {
    static DISPLAYS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::OnceLock::new();
    DISPLAYS.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What `client`'s window shows, as a PNG: read from its virtual display's X server where the window
/// is ours, else WebKitWebDriver's own screenshot. WebKit's hangs where it draws without accelerated
/// compositing (as the app does without a GPU) or without its DMA-BUF renderer; the X server's never.
async fn png_of(client: &fantoccini::Client) -> Result<Vec<u8>> {
    let display = match client.session_id().await? {
        Some(session) => displays().get(&session).cloned(),
        None => None,
    };
    match display {
        #[cfg(unix)]
        Some(display) => tokio::task::spawn_blocking(move || x_screenshot(&display)).await?,
        _ => Ok(client.screenshot().await?),
    }
}

/// The whole of X display `display` as a PNG (RGB).
#[cfg(unix)]
fn x_screenshot(display: &str) -> Result<Vec<u8>> {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder};
    let (conn, screen) = x11rb::connect(Some(display)).with_context(|| format!("cannot reach X display {display}"))?;
    let setup = conn.setup();
    let root = &setup.roots[screen];
    let (width, height) = (root.width_in_pixels, root.height_in_pixels);
    let image = conn.get_image(ImageFormat::Z_PIXMAP, root.root, 0, 0, width, height, !0)?.reply()?;
    let bits = setup.pixmap_formats.iter().find(|f| f.depth == image.depth).map(|f| f.bits_per_pixel);
    ensure!(
        bits == Some(32) && setup.image_byte_order == ImageOrder::LSB_FIRST,
        "X display {display} has pixels of {bits:?} bits, {:?}; only 32-bit little-endian ones are read",
        setup.image_byte_order
    );
    // Blue, green, red and a pad byte per pixel.
    let rgb: Vec<u8> = image.data.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, u32::from(width), u32::from(height));
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&rgb)?;
    Ok(png)
}

/// Starts the app again over `data` on `display` with `args`, as the desktop does for a second launch or
/// a `fixbox://` link, and waits for it to exit (it hands over to the running app; 60 s at most).
pub async fn start_again(display: &str, data: &Path, args: &[&str]) -> Result<std::process::Output> {
    let second = tokio::process::Command::new(workspace_bin("fixbox-desktop")?)
        .args(args)
        .env("FIXBOX_DATA_DIR", data)
        .env("DISPLAY", display)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .context("the second start did not exit")?
        .map_err(Into::into)
}

/// The window as a PNG, once what the DOM holds now has been painted: WebKit's screenshot shows the
/// last painted frame, which can be a step behind the DOM a check just read.
pub async fn screenshot(client: &fantoccini::Client, path: &Path) -> Result<()> {
    client
        .execute_async(
            "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done()));",
            vec![],
        )
        .await?;
    let png = png_of(client).await?;
    ensure!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    std::fs::write(path, png)?;
    Ok(())
}

/// Waits for `css` (90 s at most); when it does not come, keeps what the window showed instead as
/// `out/<name>.*`.
pub async fn wait_for(
    client: &fantoccini::Client,
    css: &str,
    out: &Path,
    name: &str,
) -> Result<fantoccini::elements::Element> {
    wait_for_within(client, css, out, name, Duration::from_secs(90)).await
}

/// [`wait_for`] for up to `limit`.
pub async fn wait_for_within(
    client: &fantoccini::Client,
    css: &str,
    out: &Path,
    name: &str,
    limit: Duration,
) -> Result<fantoccini::elements::Element> {
    match client.wait().at_most(limit).for_element(Locator::Css(css)).await {
        Ok(element) => Ok(element),
        Err(err) => {
            keep_what_shows(client, out, name).await;
            Err(err).with_context(|| format!("{css} did not appear in the window (see {name}.*)"))
        }
    }
}

/// Waits until `css`'s text satisfies `done` (90 s at most), and returns it; when it does not, keeps
/// what the window showed instead as `out/<name>.*`.
pub async fn wait_for_text(
    client: &fantoccini::Client,
    css: &str,
    out: &Path,
    name: &str,
    done: impl Fn(&str) -> bool,
) -> Result<String> {
    let mut last = String::new();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            last = element.text().await.unwrap_or_default();
            if done(&last) {
                return Ok(last);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keep_what_shows(client, out, name).await;
    anyhow::bail!("{css} never read as expected (see {name}.*); it last read {last:?}")
}

/// The window's screenshot and HTML as `out/<name>.png` and `.html`, for a check that failed.
async fn keep_what_shows(client: &fantoccini::Client, out: &Path, name: &str) {
    if let Ok(png) = png_of(client).await {
        let _ = std::fs::write(out.join(format!("{name}.png")), png);
    }
    if let Ok(html) = client.source().await {
        let _ = std::fs::write(out.join(format!("{name}.html")), html);
    }
}
