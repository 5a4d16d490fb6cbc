//! The "Auto-fix with Fixbox" button on GitHub's issue pages (`resources/browser`), in headless
//! Chromium driven by chromedriver: a copy of an issue page served on loopback at the address GitHub
//! uses, the userscript run in it as the extension or a userscript manager runs it, and GitHub's
//! in-page navigation to another issue and away from issues.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::{ClientBuilder, Locator};
use fixbox_e2e::{ChildGuard, free_port, output_dir, wait_for_port, workspace_root};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves the copy of an issue page at every address.
async fn serve_page() -> Result<String> {
    let page = std::fs::read(workspace_root().join("tests/fixtures/github/issue-page.html"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = client.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    page.len()
                );
                let _ = client.write_all(head.as_bytes()).await;
                let _ = client.write_all(&page).await;
            });
        }
    });
    Ok(base)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_issue_page_gets_an_auto_fix_button_that_links_the_app_to_the_issue() -> Result<()> {
    let out = output_dir("browser-button")?;
    let base = serve_page().await?;
    let port = free_port()?;
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start chromedriver: scripts/setup installs it (Debian's chromium-driver)")?;
    let mut driver = ChildGuard::new("chromedriver", driver);
    wait_for_port(port, &mut driver, Duration::from_secs(30))?;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,700"] }),
    );
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await?;
    let script = std::fs::read_to_string(workspace_root().join("resources/browser/fixbox-autofix.user.js"))?;

    let checks = async {
        client.goto(&format!("{base}/octo/cache/issues/7")).await?;
        client.execute(&script, vec![]).await?;
        let button = client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("fixbox-autofix")).await?;
        ensure!(button.text().await? == "Auto-fix with Fixbox", "{}", button.text().await?);
        ensure!(
            button.attr("href").await?.as_deref() == Some("fixbox://fix?repo=octo/cache&issue=7"),
            "{:?}",
            button.attr("href").await?
        );
        // In the header's actions, before GitHub's own.
        let first = client
            .execute(
                "return document.querySelector('[data-testid=\"issue-header\"] [data-component=\"PH_Actions\"]').firstElementChild.id",
                vec![],
            )
            .await?;
        ensure!(first == "fixbox-autofix", "{first}");
        let png = client.screenshot().await?;
        std::fs::write(out.join("issue.png"), png)?;

        // GitHub moves to another issue without a reload: the button follows.
        client
            .execute(
                "history.pushState({}, '', '/octo/cache/issues/8'); document.querySelector('bdi').textContent = 'Another issue';",
                vec![],
            )
            .await?;
        let followed = wait_until_href(&client, Some("fixbox://fix?repo=octo/cache&issue=8")).await?;
        ensure!(followed, "the button did not follow the move to issue 8");
        ensure!(client.find_all(Locator::Id("fixbox-autofix")).await?.len() == 1, "a second button was added");

        // And away from issues: no button.
        client
            .execute(
                "history.pushState({}, '', '/octo/cache/pulls'); document.body.append(document.createElement('div'));",
                vec![],
            )
            .await?;
        ensure!(wait_until_href(&client, None).await?, "the button stayed on a page that is not an issue");
        Ok(())
    };
    let result = checks.await;
    client.close().await?;
    result
}

/// Waits until the button's link is `want` (`None`: no button), five seconds at most.
async fn wait_until_href(client: &fantoccini::Client, want: Option<&str>) -> Result<bool> {
    for _ in 0..50 {
        let href = client
            .execute("return document.getElementById('fixbox-autofix')?.getAttribute('href') ?? null", vec![])
            .await?;
        if href.as_str() == want {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}
