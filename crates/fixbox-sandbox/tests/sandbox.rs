//! Sandboxes on the real Docker Engine that `scripts/setup` starts, from the real `python` recipe image
//! (built offline with debootstrap on the first run, then reused).
#![expect(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test helpers: a failure stops the test with its message; build progress goes to the test log"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use fixbox_sandbox::{
    BuildMethod, DockerSandbox, Ending, Excludes, ExecOutput, ExecRequest, ExecStatus, FileWrite, Limits, Recipe,
    Sandbox, SandboxError, SandboxHost, SandboxOptions, SandboxPool, ensure_image, reap_orphans,
};
use tokio::sync::OnceCell;

static IMAGE: OnceCell<String> = OnceCell::const_new();
static RUST_IMAGE: OnceCell<String> = OnceCell::const_new();

async fn image() -> String {
    IMAGE.get_or_init(|| built("python")).await.clone()
}

async fn built(recipe: &str) -> String {
    let host = SandboxHost::connect().await.unwrap();
    let recipe = Recipe::builtin(recipe).unwrap();
    ensure_image(&host, &recipe, BuildMethod::from_env().unwrap(), &|line| eprintln!("[image] {line}")).await.unwrap()
}

async fn sandbox_with(limits: Limits) -> DockerSandbox {
    let host = SandboxHost::connect().await.unwrap();
    let options = SandboxOptions { limits, ..SandboxOptions::new(image().await) };
    DockerSandbox::create(&host, &options).await.unwrap()
}

async fn sandbox() -> DockerSandbox {
    sandbox_with(Limits::default()).await
}

async fn run(sandbox: &DockerSandbox, script: &str) -> ExecOutput {
    sandbox.exec(ExecRequest::shell(script)).await.unwrap().finish().await.unwrap()
}

#[tokio::test]
async fn a_command_returns_its_output_and_exit_code() {
    let sb = sandbox().await;
    let out = run(&sb, "echo out; echo err >&2; pwd; id -u; exit 3").await;
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.stdout, "out\n/workspace\n1000\n");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.ending, Ending::Exited);
    assert!(!out.oom_killed && !out.truncated);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let out = sb.exec(ExecRequest::new(["python3", "-c", "print(6 * 7)"]).on_output(tx)).await.unwrap();
    let ExecStatus::Finished(out) = out else { panic!("no soft timeout was set") };
    assert_eq!((out.exit_code, out.stdout.as_str()), (Some(0), "42\n"));
    assert_eq!(rx.recv().await, Some(fixbox_sandbox::OutputChunk::Stdout("42\n".into())));
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn long_output_is_capped_and_the_cut_is_marked() {
    let sb = sandbox().await;
    let request = ExecRequest::shell("seq 1 100000").output_limit(1000);
    let out = sb.exec(request).await.unwrap().finish().await.unwrap();
    assert!(out.truncated);
    assert!(out.stdout.starts_with("1\n2\n3\n"), "{}", &out.stdout[..50]);
    assert!(out.stdout.ends_with("99999\n100000\n"));
    assert!(out.stdout.contains("bytes cut …]"));
    assert!(out.stdout.len() < 1100);
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn the_soft_timeout_returns_partial_output_and_the_command_goes_on() {
    let sb = sandbox().await;
    let request = ExecRequest::shell("echo started; sleep 2; echo finished").soft_timeout(Duration::from_millis(700));
    let ExecStatus::StillRunning { partial, running } = sb.exec(request).await.unwrap() else {
        panic!("a 2 s command returned before a 0.7 s soft timeout")
    };
    assert_eq!(partial.stdout, "started\n");
    let out = running.wait().await.unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str(), out.ending), (Some(0), "started\nfinished\n", Ending::Exited));
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn interrupt_is_ctrl_c_for_the_whole_command() {
    let sb = sandbox().await;
    let script = "trap 'echo cleaning up; exit 5' INT; echo ready; sleep 60 & wait";
    let request = ExecRequest::shell(script).soft_timeout(Duration::from_millis(700));
    let ExecStatus::StillRunning { running, .. } = sb.exec(request).await.unwrap() else { panic!("it returned early") };
    let out = running.interrupt().await.unwrap();
    assert_eq!(out.ending, Ending::Interrupted);
    assert_eq!(out.exit_code, Some(5), "the trap ran: {out:?}");
    assert_eq!(out.stdout, "ready\ncleaning up\n");
    // The background sleep ignores SIGINT (as background jobs of a script do); what an interrupted
    // command leaves behind is killed once it has ended. ([6] keeps pgrep from matching its own shell.)
    assert_eq!(run(&sb, "pgrep -fc 'sleep [6]0' || true").await.stdout.trim(), "0");
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn the_hard_timeout_kills_every_process_and_the_sandbox_stays_usable() {
    let sb = sandbox().await;
    let request = ExecRequest::shell("echo begun; (sleep 300 &); setsid sleep 301 & sleep 302")
        .soft_timeout(Duration::from_millis(300))
        .hard_timeout(Duration::from_secs(2));
    let status = sb.exec(request).await.unwrap();
    assert!(matches!(status, ExecStatus::StillRunning { .. }));
    let out = status.finish().await.unwrap();
    assert_eq!(out.ending, Ending::HardTimeout);
    assert_eq!(out.exit_code, Some(137));
    assert_eq!(out.stdout, "begun\n");
    assert!(!out.oom_killed, "a kill by the timeout is not an OOM");
    // Also the process that left for its own session, and the one whose parent exited.
    assert_eq!(run(&sb, "pgrep -fc 'sleep 30[0-2]' || true").await.stdout.trim(), "0");
    assert_eq!(run(&sb, "echo still here").await.stdout, "still here\n");
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn an_oom_is_reported_as_such_and_the_session_continues() {
    let sb = sandbox_with(Limits { memory_bytes: 96 << 20, ..Limits::default() }).await;
    let out = run(&sb, "python3 -c 'x = bytearray(512 * 1024 * 1024)'").await;
    assert_eq!(out.exit_code, Some(137));
    assert!(out.oom_killed, "{out:?}");
    assert_eq!(out.ending, Ending::Exited);

    let next = run(&sb, "echo alive").await;
    assert_eq!((next.exit_code, next.stdout.as_str(), next.oom_killed), (Some(0), "alive\n", false));
    // A process killed by SIGKILL for another reason is not blamed on memory.
    let killed = run(&sb, "kill -9 $$").await;
    assert_eq!(killed.exit_code, Some(137));
    assert!(!killed.oom_killed);
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn a_fork_bomb_is_contained_by_the_pids_limit() {
    let sb = sandbox_with(Limits { pids: 64, ..Limits::default() }).await;
    // The command's own process starts the bomb with its one fork, then only waits: it needs no pid
    // and execs nothing once the bomb runs, so only the hard timeout can end it.
    let waiter =
        "import subprocess, time; subprocess.Popen(['sh', '-c', 'bomb() { bomb | bomb & }; bomb']); time.sleep(30)";
    let request = ExecRequest::new(["python3", "-c", waiter]).hard_timeout(Duration::from_secs(4));
    let out = sb.exec(request).await.unwrap().finish().await.unwrap();
    let mut said: Vec<&str> = out.stderr.lines().collect();
    said.sort_unstable();
    said.dedup();
    let why = format!("exit {:?} after {:?}; stderr's distinct lines: {said:?}", out.exit_code, out.duration);
    assert_eq!(out.ending, Ending::HardTimeout, "{why}");
    // Killed with everything it started: the bomb, and the waiter whose output it held open.
    assert_eq!(out.exit_code, Some(137), "{why}");
    assert!(out.stderr.contains("Cannot fork") || out.stderr.contains("Resource temporarily unavailable"), "{why}");
    let after =
        run(&sb, "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null | head -n 1; echo ok").await;
    assert_eq!(after.stdout, "64\nok\n");
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn writing_past_the_tmpfs_size_fails_inside_the_sandbox_only() {
    let sb = sandbox_with(Limits { tmp_bytes: 16 << 20, workspace_bytes: 16 << 20, ..Limits::default() }).await;
    for dir in ["/tmp", "/workspace"] {
        let out = run(&sb, &format!("dd if=/dev/zero of={dir}/big bs=1M count=64 2>&1; echo exit=$?")).await;
        assert!(out.stdout.contains("No space left on device"), "{dir}: {out:?}");
        assert!(out.stdout.contains("exit=1"), "{dir}: {out:?}");
        let size = run(&sb, &format!("du -m {dir}/big | cut -f1; rm {dir}/big")).await;
        assert!(size.stdout.trim().parse::<u32>().unwrap() <= 16, "{size:?}");
    }
    assert_eq!(run(&sb, "echo fine > /tmp/small && cat /tmp/small").await.stdout, "fine\n");
    sb.destroy().await.unwrap();
}

/// A test that waits for input (a prompt, `input()`) reads end-of-file at once: nothing is attached to
/// a command's stdin, so it fails instead of hanging until its timeout.
#[tokio::test]
async fn a_command_that_reads_stdin_gets_end_of_file_instead_of_waiting() {
    let sb = sandbox().await;
    let request =
        ExecRequest::shell("read line; echo read=$?; python3 -c 'input()'").hard_timeout(Duration::from_secs(60));
    let out = sb.exec(request).await.unwrap().finish().await.unwrap();
    assert_eq!(out.ending, Ending::Exited, "{out:?}");
    assert!(out.stdout.starts_with("read=1\n"), "{out:?}");
    assert!(out.stderr.contains("EOFError"), "{out:?}");
    sb.destroy().await.unwrap();
}

/// Both disks filled at once under a memory limit sized as the defaults are: the files are memory too,
/// and they stay below the limit, so the writer hears "No space left" and nothing is OOM-killed.
#[tokio::test]
async fn full_disks_end_as_no_space_left_not_as_an_out_of_memory_kill() {
    let sb = sandbox_with(Limits::with_memory(192 << 20)).await;
    let fill = "for dir in /workspace /tmp; do dd if=/dev/zero of=$dir/big bs=1M count=256 2>&1 | grep -o 'No space left on device'; done; echo done";
    let out = sb.exec(ExecRequest::shell(fill)).await.unwrap().finish().await.unwrap();
    assert_eq!(out.stdout.matches("No space left on device").count(), 2, "{out:?}");
    assert_eq!((out.exit_code, out.oom_killed), (Some(0), false), "{out:?}");
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn the_sandbox_has_no_network_no_docker_socket_no_capabilities_and_a_read_only_root() {
    let sb = sandbox().await;
    assert_eq!(run(&sb, "ls /sys/class/net").await.stdout, "lo\n");
    let connect = "import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)";
    let out = run(&sb, &format!("python3 -c \"{connect}\"")).await;
    assert_ne!(out.exit_code, Some(0));
    assert!(out.stderr.contains("Network is unreachable"), "{out:?}");

    let out = run(&sb, "ls -l /var/run/docker.sock /run/docker.sock 2>&1; echo exit=$?").await;
    assert!(out.stdout.contains("No such file") && out.stdout.contains("exit=2"), "{out:?}");
    assert_eq!(run(&sb, "grep CapEff /proc/self/status").await.stdout, "CapEff:\t0000000000000000\n");
    assert_eq!(run(&sb, "grep NoNewPrivs /proc/self/status").await.stdout, "NoNewPrivs:\t1\n");

    let places = ["/", "/etc", "/usr/bin", "/var/tmp", "/root", "/home", "/dev", "/dev/shm", "/run"];
    for place in places {
        let out = run(&sb, &format!("touch {place}/fixbox-probe")).await;
        assert_ne!(out.exit_code, Some(0), "could write to {place}");
    }
    for place in ["/workspace", "/tmp"] {
        let out = run(&sb, &format!("touch {place}/fixbox-probe")).await;
        assert_eq!(out.exit_code, Some(0), "cannot write to {place}: {out:?}");
    }
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn copying_a_repo_in_and_out_keeps_bytes_and_modes_exactly() {
    let source = tempfile::tempdir().unwrap();
    let root = source.path();
    let mut binary = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..(1 << 20) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        binary.push((x >> 16) as u8);
    }
    let files: [(&str, &[u8], u32); 7] = [
        ("README.md", b"# demo\n", 0o644),
        ("run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        ("secret/notes.txt", b"-----\n", 0o600),
        ("data/blob.bin", &binary, 0o640),
        ("data/empty", b"", 0o444),
        ("src/pkg/mod.py", "def f():\n    return 'ünïcode'\n".as_bytes(), 0o664),
        (".git/HEAD", b"ref: refs/heads/main\n", 0o644),
    ];
    for (path, bytes, mode) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(root.join("secret"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("../README.md", root.join("src/readme-link")).unwrap();
    std::fs::create_dir_all(root.join("target/debug")).unwrap();
    std::fs::write(root.join("target/debug/huge"), vec![0u8; 4096]).unwrap();

    let sb = sandbox().await;
    let stats = sb.copy_in(root, "/workspace", &Excludes::default()).await.unwrap();
    assert_eq!(stats.files, 7);
    let listing =
        run(&sb, "stat -c '%a %s %n' run.sh data/blob.bin; stat -c '%a %n' secret; ls target 2>&1 || true").await;
    assert_eq!(
        listing.stdout,
        "755 18 run.sh\n640 1048576 data/blob.bin\n700 secret\nls: cannot access 'target': No such file or directory\n"
    );

    let back = tempfile::tempdir().unwrap();
    sb.copy_out("/workspace", back.path()).await.unwrap();
    for (path, bytes, mode) in files {
        let copied = back.path().join(path);
        assert_eq!(std::fs::read(&copied).unwrap(), bytes, "{path}");
        assert_eq!(std::fs::metadata(&copied).unwrap().permissions().mode() & 0o7777, mode, "{path}");
    }
    assert_eq!(mode_of(&back.path().join("secret")), 0o700);
    assert_eq!(std::fs::read_link(back.path().join("src/readme-link")).unwrap(), Path::new("../README.md"));
    assert!(!back.path().join("target").exists());
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn what_one_sandbox_saved_another_restores_where_it_was_with_its_modes() {
    let first = sandbox().await;
    let made = run(
        &first,
        "python3 -m venv --without-pip /tmp/venv && mkdir -p /workspace/p.egg-info && echo 'Name: p' > /workspace/p.egg-info/PKG-INFO && chmod 0600 /workspace/p.egg-info/PKG-INFO",
    )
    .await;
    assert_eq!(made.exit_code, Some(0), "{}", made.stderr);
    let kept = tempfile::tempdir().unwrap();
    let archive = kept.path().join("env.tar");
    let paths = ["/tmp/venv".to_string(), "/workspace/p.egg-info".to_string()];
    let bytes = first.save(&paths, &archive).await.unwrap();
    assert_eq!(bytes, std::fs::metadata(&archive).unwrap().len());
    first.destroy().await.unwrap();

    let second = sandbox().await;
    second.restore(&archive).await.unwrap();
    let listing = run(&second, "/tmp/venv/bin/python -c 'import sys; print(sys.prefix)'; stat -c '%a %U' /workspace/p.egg-info/PKG-INFO; cat /workspace/p.egg-info/PKG-INFO").await;
    assert_eq!(listing.stdout, "/tmp/venv\n600 fixbox\nName: p\n", "{}", listing.stderr);
    let missing = second.save(&["/tmp/nothere".to_string()], &kept.path().join("none.tar")).await;
    assert!(matches!(missing, Err(SandboxError::Sandbox { op: "pack the files", .. })), "{missing:?}");
    second.destroy().await.unwrap();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn setup_runs_with_network_and_the_network_is_cut_after() {
    let host = SandboxHost::connect().await.unwrap();
    let options = SandboxOptions {
        setup: vec![ExecRequest::shell("ls /sys/class/net | tr '\\n' ' ' > /tmp/during-setup")],
        ..SandboxOptions::new(image().await)
    };
    let sb = DockerSandbox::create(&host, &options).await.unwrap();
    assert_eq!(run(&sb, "cat /tmp/during-setup").await.stdout, "eth0 lo ");
    assert_eq!(run(&sb, "ls /sys/class/net").await.stdout, "lo\n");
    sb.destroy().await.unwrap();
}

#[tokio::test]
async fn a_runtime_the_engine_lacks_is_refused_with_the_ones_it_has() {
    let host = SandboxHost::connect().await.unwrap();
    let options = SandboxOptions { runtime: Some("no-such-runtime".to_string()), ..SandboxOptions::new(image().await) };
    let err = DockerSandbox::create(&host, &options).await.unwrap_err();
    assert!(matches!(err, SandboxError::RuntimeMissing { .. }), "{err}");
    assert!(err.to_string().contains("runc"), "{err}");
}

#[tokio::test]
async fn an_image_that_is_not_there_is_named_in_the_error() {
    let host = SandboxHost::connect().await.unwrap();
    let err =
        DockerSandbox::create(&host, &SandboxOptions::new("fixbox-sandbox-missing:000000000000")).await.unwrap_err();
    assert!(matches!(err, SandboxError::ImageMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("fixbox-sandbox-missing:000000000000"), "{err}");
}

#[tokio::test]
async fn a_built_image_is_reused_without_building() {
    let tag = image().await;
    let host = SandboxHost::connect().await.unwrap();
    let lines = std::sync::Mutex::new(Vec::new());
    let again = ensure_image(&host, &Recipe::builtin("python").unwrap(), BuildMethod::Auto, &|line| {
        lines.lock().unwrap().push(line.to_string());
    })
    .await
    .unwrap();
    assert_eq!(again, tag);
    assert!(lines.lock().unwrap().is_empty(), "it built again: {:?}", lines.lock().unwrap());
}

#[tokio::test]
async fn the_warm_pool_hands_out_ready_sandboxes_and_refills() {
    let host = SandboxHost::connect().await.unwrap();
    let pool = SandboxPool::start(host, SandboxOptions::new(image().await), 2).unwrap();
    assert!(pool.wait_until_full(Duration::from_secs(60)).await);
    let a = pool.take().await.unwrap();
    let b = pool.take().await.unwrap();
    assert_ne!(a.container_id(), b.container_id());
    assert_eq!(run(&a, "echo a").await.stdout, "a\n");
    assert_eq!(run(&b, "echo b").await.stdout, "b\n");
    // The first copy into /workspace goes to the receiver the pool started; the next starts its own.
    for (file, text) in [("first.txt", "one"), ("second.txt", "two")] {
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join(file), text).unwrap();
        let stats = a.copy_in(repo.path(), "/workspace", &Excludes::default()).await.unwrap();
        assert_eq!(stats.files, 1);
    }
    assert_eq!(run(&a, "cat first.txt second.txt").await.stdout, "onetwo");
    assert!(pool.wait_until_full(Duration::from_secs(60)).await, "the pool did not refill");
    assert_eq!(pool.ready(), 2);
    let idle = pool.ready_ids();
    assert!(!idle.contains(&a.container_id().to_string()));
    pool.shutdown().await.unwrap();
    let after = containers_with_label(fixbox_sandbox::labels::SANDBOX).await;
    assert!(idle.iter().all(|id| !after.contains(id)), "shutdown leaves idle sandboxes behind");
    a.destroy().await.unwrap();
    b.destroy().await.unwrap();
}

#[tokio::test]
async fn a_sandbox_of_the_warm_pool_removed_meanwhile_is_never_handed_out() {
    let host = SandboxHost::connect().await.unwrap();
    let pool = SandboxPool::start(host, SandboxOptions::new(image().await), 1).unwrap();
    assert!(pool.wait_until_full(Duration::from_secs(60)).await);
    let gone = pool.ready_ids().remove(0);
    // As a Docker restart or a user's `docker rm` does behind the pool's back.
    let removed = std::process::Command::new("docker").args(["rm", "-f", &gone]).output().unwrap();
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    assert!(pool.take_ready().await.is_none(), "a removed sandbox was handed out");
    let fresh = pool.take().await.unwrap();
    assert_ne!(fresh.container_id(), gone);
    assert_eq!(run(&fresh, "echo ok").await.stdout, "ok\n");
    fresh.destroy().await.unwrap();
    pool.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_reaper_removes_sandboxes_whose_owner_is_gone_and_keeps_live_ones() {
    let live = sandbox().await;
    // An orphan: a sandbox container whose owner process has exited.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let host = String::from_utf8(std::process::Command::new("hostname").output().unwrap().stdout).unwrap();
    let orphan = std::process::Command::new("docker")
        .args(["run", "-d", "--network", "none", "--label", "dev.fixbox.sandbox=1"])
        .args(["--label", &format!("dev.fixbox.owner-pid={dead_pid}")])
        .args(["--label", &format!("dev.fixbox.owner-host={}", host.trim())])
        .arg(image().await)
        .output()
        .unwrap();
    assert!(orphan.status.success(), "{}", String::from_utf8_lossy(&orphan.stderr));
    let orphan_id = String::from_utf8(orphan.stdout).unwrap().trim().to_string();

    let host = SandboxHost::connect().await.unwrap();
    let removed = reap_orphans(&host).await.unwrap();
    assert!(!removed.is_empty());
    let remaining = containers_with_label(fixbox_sandbox::labels::SANDBOX).await;
    assert!(!remaining.iter().any(|id| orphan_id.starts_with(id.as_str())), "the orphan is still there");
    assert!(remaining.iter().any(|id| live.container_id().starts_with(id.as_str())), "a live sandbox was reaped");
    live.destroy().await.unwrap();
}

#[tokio::test]
async fn a_dropped_sandbox_is_removed() {
    let sb = sandbox().await;
    let id = sb.container_id().to_string();
    drop(sb);
    for _ in 0..100 {
        if !containers_with_label(fixbox_sandbox::labels::SANDBOX).await.iter().any(|c| id.starts_with(c.as_str())) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the dropped sandbox {id} is still there");
}

/// Short ids of the containers carrying `label`, via the docker CLI (an independent view).
async fn containers_with_label(label: &str) -> Vec<String> {
    let out = tokio::process::Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter", &format!("label={label}")])
        .output()
        .await
        .unwrap();
    String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect()
}

/// The online build, for real: the recipe's Dockerfile through the Engine's build API, with `apt-get`
/// reaching the Debian mirror. No registry is reachable here, so when the Engine lacks
/// `debian:bookworm-slim` the test makes it the way that image is made: a debootstrap minbase of
/// bookworm, imported.
#[tokio::test]
async fn the_online_build_makes_a_working_image_from_the_dockerfile() {
    let host = SandboxHost::connect().await.unwrap();
    if !host.has_image("debian:bookworm-slim").await.unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let status = std::process::Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&rootfs)
            .arg("http://deb.debian.org/debian")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let import = format!("tar --numeric-owner -C {} -c . | docker import - debian:bookworm-slim", rootfs.display());
        assert!(std::process::Command::new("sh").args(["-c", &import]).status().unwrap().success());
    }
    let recipe = Recipe::parse(
        "name = \"online-check\"\ndescription = \"online build check\"\nsuite = \"bookworm\"\npackages = [\"python3\", \"git\"]\n",
    )
    .unwrap();
    let tag = recipe.image_tag();
    // Always build: an image left by an earlier run would skip what this test is for.
    let _ = tokio::process::Command::new("docker").args(["rmi", "-f", &tag]).output().await;

    let lines = std::sync::Mutex::new(Vec::new());
    let built = ensure_image(&host, &recipe, BuildMethod::Online, &|line| lines.lock().unwrap().push(line.to_string()))
        .await
        .unwrap();
    assert_eq!(built, tag);
    let lines = lines.into_inner().unwrap();
    assert!(lines.iter().any(|l| l.contains("FROM debian:bookworm-slim")), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("built sandbox image"), "{lines:?}");

    let sb = DockerSandbox::create(&host, &SandboxOptions::new(tag.clone())).await.unwrap();
    let out = run(&sb, "id -un; pwd; python3 -c 'print(6 * 7)'; git --version | cut -d' ' -f1-2").await;
    assert_eq!(out.stdout, "fixbox\n/workspace\n42\ngit version\n", "{out:?}");
    sb.destroy().await.unwrap();
}

/// gVisor, where the Engine has it (scripts/setup registers Debian's runsc): the same sandbox, with
/// commands answered by gVisor's kernel instead of the host's.
#[tokio::test]
async fn with_gvisor_commands_run_under_its_kernel_with_the_same_limits() {
    let host = SandboxHost::connect().await.unwrap();
    let runtimes = host.runtimes().await.unwrap();
    assert!(
        runtimes.iter().any(|r| r == "runsc"),
        "the Engine has no runsc (scripts/setup registers it): {runtimes:?}"
    );
    let options = SandboxOptions { runtime: Some("runsc".to_string()), ..SandboxOptions::new(image().await) };
    let sb = DockerSandbox::create(&host, &options).await.unwrap();

    let host_kernel = std::fs::read_to_string("/proc/version").unwrap();
    let out =
        run(&sb, "cat /proc/version; id -u; grep CapEff /proc/self/status; touch /etc/x 2>/dev/null || echo ro").await;
    let mut lines = out.stdout.lines();
    assert_ne!(lines.next().unwrap(), host_kernel.trim(), "the command saw the host's kernel");
    assert_eq!(lines.collect::<Vec<_>>(), ["1000", "CapEff:\t0000000000000000", "ro"]);

    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("test_ok.py"), "def test_ok():\n    assert 1 + 1 == 2\n").unwrap();
    sb.copy_in(repo.path(), "/workspace", &Excludes::default()).await.unwrap();
    let pytest = run(&sb, "python3 -m pytest -q -p no:cacheprovider").await;
    assert_eq!(pytest.exit_code, Some(0), "{pytest:?}");
    assert!(pytest.stdout.contains("1 passed"), "{pytest:?}");

    let request = ExecRequest::shell("sleep 300 & sleep 301").hard_timeout(Duration::from_secs(2));
    let out = sb.exec(request).await.unwrap().finish().await.unwrap();
    assert_eq!((out.ending, out.exit_code), (Ending::HardTimeout, Some(137)));
    assert_eq!(run(&sb, "pgrep -fc 'sleep 30[01]' || true").await.stdout.trim(), "0");
    sb.destroy().await.unwrap();
}

/// A file written into the sandbox right after a build is rebuilt by the next one, every time: its mtime
/// is the time it was written, never the whole second it was written in (which is older than a build
/// that started in that second, so cargo kept the old binary). Eight rounds: with whole seconds, each
/// round's write lands in the second its build started about half the time on this machine.
#[tokio::test]
async fn a_file_written_right_after_a_build_is_rebuilt() {
    let host = SandboxHost::connect().await.unwrap();
    let sb = DockerSandbox::create(&host, &SandboxOptions::new(RUST_IMAGE.get_or_init(|| built("rust")).await.clone()))
        .await
        .unwrap();
    let main = |n: u32| FileWrite {
        path: "src/main.rs".into(),
        content: format!("fn main() {{ println!(\"{n}\"); }}\n").into_bytes(),
        executable: false,
    };
    let manifest = "[package]\nname = \"stamp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";
    let manifest = FileWrite { path: "Cargo.toml".into(), content: manifest.into(), executable: false };
    sb.write_files("/workspace", &[manifest, main(0)]).await.unwrap();
    let cargo_run = ExecRequest::shell("CARGO_HOME=/tmp/cargo cargo run -q --offline");
    let mut seen = Vec::new();
    for round in 0..8 {
        if round > 0 {
            sb.write_files("/workspace", &[main(round)]).await.unwrap();
        }
        let out = sb.exec(cargo_run.clone()).await.unwrap().finish().await.unwrap();
        assert_eq!(out.exit_code, Some(0), "{out:?}");
        seen.push(out.stdout.trim().to_string());
    }
    assert_eq!(seen, (0..8).map(|n| n.to_string()).collect::<Vec<_>>(), "a round ran the build before its write");
    sb.destroy().await.unwrap();
}

/// Python in a sandbox runs the code a patch wrote, even a same-length one written in the second after
/// an import: a bytecode cache is trusted while its source's size and whole-second mtime match, so the
/// images write none (`PYTHONDONTWRITEBYTECODE`; without it this prints 0 eight times).
#[tokio::test]
async fn python_runs_a_same_length_patch_written_right_after_an_import() {
    let sb = sandbox().await;
    let module =
        |n: u32| FileWrite { path: "m.py".into(), content: format!("X = {n}\n").into_bytes(), executable: false };
    let import = ExecRequest::new(["python3", "-c", "import m; print(m.X)"]);
    let mut seen = Vec::new();
    for round in 0..8 {
        sb.write_files("/workspace", &[module(round)]).await.unwrap();
        let out = sb.exec(import.clone()).await.unwrap().finish().await.unwrap();
        seen.push(out.stdout.trim().to_string());
    }
    assert_eq!(seen, (0..8).map(|n| n.to_string()).collect::<Vec<_>>(), "an import ran an older patch");
    assert_eq!(run(&sb, "ls -a").await.stdout, ".\n..\nm.py\n", "no bytecode cache is written");
    sb.destroy().await.unwrap();
}

/// A loopback forwarder to this machine's Engine that is slow to record an exec's exit, as a loaded
/// machine's Engine is: for `lag` after the Engine first reports an exec finished, the exec's inspect
/// still says it is running. Everything else passes through byte for byte (exec's upgraded stream too);
/// each connection carries one request, so every inspect is seen.
async fn slow_to_record_exits(lag: Duration) -> String {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    async fn relay(
        client: tokio::net::TcpStream,
        finished: Arc<Mutex<HashMap<String, std::time::Instant>>>,
        lag: Duration,
    ) -> std::io::Result<()> {
        let mut host = tokio::net::UnixStream::connect("/var/run/docker.sock").await?;
        let mut client = BufReader::new(client);
        let mut head: Vec<String> = Vec::new();
        loop {
            let mut line = String::new();
            if client.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                if !head.iter().any(|l| l.to_ascii_lowercase().starts_with("connection:")) {
                    head.push("Connection: close\r\n".to_string());
                }
                head.push(line);
                break;
            }
            head.push(line);
        }
        host.write_all(head.concat().as_bytes()).await?;
        let inspected = head[0]
            .split(' ')
            .nth(1)
            .and_then(|path| path.split("/exec/").nth(1))
            .and_then(|rest| rest.strip_suffix("/json"))
            .map(str::to_string);
        match inspected {
            Some(exec) if head[0].starts_with("GET ") => {
                let mut answer = Vec::new();
                host.read_to_end(&mut answer).await?;
                let mut answer = String::from_utf8_lossy(&answer).into_owned();
                if answer.contains("\"Running\":false") {
                    let first = *finished.lock().unwrap().entry(exec).or_insert_with(std::time::Instant::now);
                    if first.elapsed() < lag {
                        // Same length, so Content-Length and chunk sizes stay right.
                        answer = answer.replace("\"Running\":false", "\"Running\":true ");
                    }
                }
                client.get_mut().write_all(answer.as_bytes()).await?;
            }
            _ => {
                host.write_all(client.buffer()).await?;
                let mut client = client.into_inner();
                tokio::io::copy_bidirectional(&mut client, &mut host).await?;
            }
        }
        Ok(())
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("tcp://{}", listener.local_addr().unwrap());
    let finished = Arc::default();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, Arc::clone(&finished), lag));
        }
    });
    host
}

#[tokio::test]
async fn an_exit_the_engine_records_late_is_waited_for_not_read_as_a_failure() {
    // Before, the exit code was polled for about a second after the output ended and then read as
    // "none", which the session judged a failing test run.
    let host = SandboxHost::connect_to(&slow_to_record_exits(Duration::from_secs(3)).await).await.unwrap();
    let sb = DockerSandbox::create(&host, &SandboxOptions::new(image().await)).await.unwrap();
    let out = run(&sb, "echo passed; exit 0").await;
    assert_eq!((out.exit_code, out.stdout.as_str(), out.ending), (Some(0), "passed\n", Ending::Exited));
    let out = run(&sb, "exit 5").await;
    assert_eq!(out.exit_code, Some(5));
    sb.destroy().await.unwrap();
}
