//! Sandbox speed against the docker CLI, measured in one run on one machine:
//! (a) request → ready sandbox with a 10 MB repo copied in: cold, from the warm pool, and a plain
//!     `docker run` + `docker cp` of the same image;
//!     and a session's start from the warm pools it keeps (a sandbox handed over, before its copy);
//! (b) the round trip of a trivial command: our exec against `docker exec`;
//! (c) what gVisor (`runsc`, the default where the Engine has it) costs against runc: a ready sandbox,
//!     an exec round trip, and a pytest run of 200 tests.
//!
//! Run: `cargo bench -p fixbox-e2e --bench sandbox` (the Docker daemon must be up: scripts/setup).
//! Targets: warm pool < 100 ms median; cold ≤ 1.5× docker run; exec ≤ 1.0× docker exec.
#![expect(clippy::print_stdout, reason = "a benchmark prints its report")]

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use fixbox_sandbox::{
    BuildMethod, DockerSandbox, Excludes, ExecRequest, Recipe, Sandbox, SandboxHost, SandboxOptions, SandboxPool,
    ensure_image,
};

const ROUNDS: usize = 9;
const EXEC_ROUNDS: usize = 40;

#[tokio::main]
async fn main() -> Result<()> {
    let docker = SandboxHost::connect().await?;
    let image =
        ensure_image(&docker, &Recipe::builtin("python")?, BuildMethod::from_env()?, &|l| println!("{l}")).await?;
    let repo = tempfile::tempdir()?;
    make_repo(repo.path(), 10 << 20)?;
    let options = SandboxOptions::new(image.clone());

    // (a) Ready sandbox with the repo in it.
    let mut cold = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let sandbox = DockerSandbox::create(&docker, &options).await?;
        sandbox.copy_in(repo.path(), "/workspace", &Excludes::default()).await?;
        cold.push(start.elapsed());
        sandbox.destroy().await?;
    }
    let pool = SandboxPool::start(docker.clone(), options.clone(), 2)?;
    let mut warm = Vec::new();
    for _ in 0..ROUNDS {
        ensure!(pool.wait_until_full(Duration::from_secs(60)).await, "the pool did not fill");
        let start = Instant::now();
        let sandbox = pool.take().await?;
        sandbox.copy_in(repo.path(), "/workspace", &Excludes::default()).await?;
        warm.push(start.elapsed());
        sandbox.destroy().await?;
    }
    pool.shutdown().await?;
    let pools = fixbox_agent::setup::WarmPools::new(1);
    session_sandbox(&pools).await?.sandbox.destroy().await?;
    let mut session = Vec::new();
    for _ in 0..ROUNDS {
        ensure!(pools.wait_until_full(Duration::from_secs(60)).await, "the session's pool did not fill");
        let start = Instant::now();
        let sandboxed = session_sandbox(&pools).await?;
        session.push(start.elapsed());
        ensure!(sandboxed.warm, "a session's sandbox did not come from the pool");
        sandboxed.sandbox.destroy().await?;
    }
    pools.shutdown().await;
    let mut docker_run = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let id = cli(&["run", "-d", "--network", "none", &image])?;
        cli(&["cp", &format!("{}/.", repo.path().display()), &format!("{id}:/workspace")])?;
        docker_run.push(start.elapsed());
        cli(&["rm", "-f", &id])?;
    }

    // (b) Exec round trip of `true`.
    let sandbox = DockerSandbox::create(&docker, &options).await?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..EXEC_ROUNDS {
        let start = Instant::now();
        let out = sandbox.exec(ExecRequest::new(["true"])).await?.finish().await?;
        ours.push(start.elapsed());
        ensure!(out.exit_code == Some(0));
        let start = Instant::now();
        cli(&["exec", sandbox.container_id(), "true"])?;
        theirs.push(start.elapsed());
    }
    sandbox.destroy().await?;

    let (cold, warm, session, docker_run, ours, theirs) =
        (median(cold), median(warm), median(session), median(docker_run), median(ours), median(theirs));
    println!("\nsandbox ready with a 10 MB repo (median of {ROUNDS})");
    println!("  docker run + docker cp   {:>8.1} ms   (baseline)", ms(docker_run));
    println!(
        "  fixbox cold              {:>8.1} ms   {:.2}x docker run   (target ≤ 1.5x)",
        ms(cold),
        ratio(cold, docker_run)
    );
    println!(
        "  fixbox warm pool         {:>8.1} ms   {:.2}x docker run   (target < 100 ms)",
        ms(warm),
        ratio(warm, docker_run)
    );
    println!(
        "  session from warm pools  {:>8.1} ms   {:.2}x docker run   (target < 100 ms; no copy yet)",
        ms(session),
        ratio(session, docker_run)
    );
    println!("exec round trip of `true` (median of {EXEC_ROUNDS})");
    println!("  docker exec (CLI)        {:>8.1} ms   (baseline)", ms(theirs));
    println!(
        "  fixbox exec (API)        {:>8.1} ms   {:.2}x docker exec   (target ≤ 1.0x)",
        ms(ours),
        ratio(ours, theirs)
    );

    // (c) gVisor against runc.
    if !docker.runtimes().await?.iter().any(|r| r == "runsc") {
        println!("gVisor: the Engine has no runsc (scripts/setup registers Debian's); not measured");
        return Ok(());
    }
    std::fs::write(
        repo.path().join("test_many.py"),
        (0..200)
            .map(|i| format!("def test_{i}():\n    assert sum(range({i})) == {i} * ({i} - 1) // 2\n\n"))
            .collect::<String>(),
    )?;
    let mut rows = Vec::new();
    for runtime in [None, Some("runsc".to_string())] {
        let options = SandboxOptions { runtime: runtime.clone(), ..options.clone() };
        let (mut ready, mut exec, mut tests) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS.min(5) {
            let start = Instant::now();
            let sandbox = DockerSandbox::create(&docker, &options).await?;
            sandbox.copy_in(repo.path(), "/workspace", &Excludes::default()).await?;
            ready.push(start.elapsed());
            for _ in 0..8 {
                let start = Instant::now();
                sandbox.exec(ExecRequest::new(["true"])).await?.finish().await?;
                exec.push(start.elapsed());
            }
            let start = Instant::now();
            let run = sandbox.exec(ExecRequest::shell("python3 -m pytest -q -p no:cacheprovider test_many.py")).await?;
            let out = run.finish().await?;
            tests.push(start.elapsed());
            ensure!(out.stdout.contains("200 passed"), "{}", out.stdout);
            sandbox.destroy().await?;
        }
        rows.push((runtime.unwrap_or_else(|| "runc".into()), median(ready), median(exec), median(tests)));
    }
    let (runc, runsc) = (&rows[0], &rows[1]);
    println!("gVisor (runsc) against runc (medians)");
    println!("  {:<28} {:>10} {:>10} {:>9}", "", "runc", "runsc", "ratio");
    for (what, a, b) in [
        ("ready with a 10 MB repo", runc.1, runsc.1),
        ("exec round trip of `true`", runc.2, runsc.2),
        ("pytest, 200 tests", runc.3, runsc.3),
    ] {
        println!("  {what:<28} {:>7.1} ms {:>7.1} ms {:>8.2}x", ms(a), ms(b), ratio(b, a));
    }
    Ok(())
}

/// A repo of `bytes` in ~200 source-like files.
fn make_repo(root: &std::path::Path, bytes: usize) -> Result<()> {
    let files = 200;
    let line = "def function_with_a_long_name(argument):  # a comment to pad the line\n    return argument\n";
    let per_file = bytes / files;
    for i in 0..files {
        let dir = root.join(format!("pkg{}", i % 10));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("module_{i}.py")), line.repeat(per_file / line.len() + 1))?;
    }
    Ok(())
}

fn cli(args: &[&str]) -> Result<String> {
    let out = Command::new("docker").args(args).output().context("docker CLI")?;
    ensure!(out.status.success(), "docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// A sandbox for a session without network from `pools`, as sessions get theirs.
async fn session_sandbox(pools: &fixbox_agent::setup::WarmPools) -> Result<fixbox_agent::setup::Sandboxed> {
    let host = fixbox_sandbox::HostAddress::Local;
    Ok(pools.sandbox(&host, "python", Default::default(), false, None, &|_: &str| {}).await?)
}
