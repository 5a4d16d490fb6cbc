//! The whole doctor against this machine's real Docker, keychain, hardware and a fresh data dir.

use fixbox_doctor::{CheckId, CheckStatus, DoctorOptions};

#[tokio::test]
async fn reports_every_check_in_order_with_docker_reachable() {
    let data = tempfile::tempdir().unwrap();
    let options = DoctorOptions { data_dir: Some(data.path().to_path_buf()) };
    let report = fixbox_doctor::run(&options).await;

    let ids: Vec<CheckId> = report.checks.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            CheckId::Docker,
            CheckId::Keychain,
            CheckId::Gpu,
            CheckId::Memory,
            CheckId::Cpu,
            CheckId::DataDir,
            CheckId::Engines
        ]
    );
    let docker = report.check(CheckId::Docker).unwrap();
    assert_eq!(docker.status, CheckStatus::Ok, "{docker:?}");
    assert!(docker.summary.starts_with("Docker Engine "), "{}", docker.summary);

    let data_dir = report.check(CheckId::DataDir).unwrap();
    assert_eq!(data_dir.status, CheckStatus::Ok, "{data_dir:?}");
    assert!(data_dir.summary.contains(&data.path().display().to_string()));
    assert!(data.path().join(fixbox_store::DB_FILE_NAME).exists());

    for check in &report.checks {
        assert!(!check.summary.is_empty());
        if check.status != CheckStatus::Ok {
            assert!(check.fix.is_some(), "a {:?} without a fix hint: {check:?}", check.status);
        }
    }
}

#[tokio::test]
async fn an_unusable_data_dir_fails_with_a_hint() {
    let parent = tempfile::tempdir().unwrap();
    let file = parent.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let report = fixbox_doctor::run(&DoctorOptions { data_dir: Some(file.join("data")) }).await;
    let check = report.check(CheckId::DataDir).unwrap();
    assert_eq!(check.status, CheckStatus::Fail);
    assert!(check.fix.as_deref().unwrap().contains("FIXBOX_DATA_DIR"), "{check:?}");
    assert_eq!(report.overall(), CheckStatus::Fail);
}
