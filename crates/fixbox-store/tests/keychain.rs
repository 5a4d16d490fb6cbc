//! Against the real OS keychain: on Linux, the Secret Service that `scripts/test` starts
//! (gnome-keyring inside `dbus-run-session`).

use fixbox_secret::Secret;
use fixbox_store::Keychain;

#[test]
fn stores_reads_and_deletes_a_secret() {
    let keychain = Keychain;
    let name = format!("test-{}", std::process::id());
    assert_eq!(keychain.get(&name).unwrap(), None);
    keychain.set(&name, &Secret::new("ghp_example")).unwrap();
    assert_eq!(keychain.get(&name).unwrap().unwrap().expose(), "ghp_example");
    keychain.set(&name, &Secret::new("ghp_rotated")).unwrap();
    assert_eq!(keychain.get(&name).unwrap().unwrap().expose(), "ghp_rotated");
    keychain.delete(&name).unwrap();
    assert_eq!(keychain.get(&name).unwrap(), None);
    keychain.delete(&name).unwrap();
    keychain.probe().unwrap();
}

#[test]
fn stored_keys_are_listed_by_name_and_hint_and_their_values_stay_out_of_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fixbox.db");
    let store = fixbox_store::Store::open_at(&db).unwrap();
    let keychain = Keychain;
    let name = format!("list-test-{}", std::process::id());
    let value = "sk-proj-4f9a0c1d2e3b5a6978c0WXYZ";
    keychain.store(&store, &name, &Secret::new(value)).unwrap();
    let listed = keychain.list(&store).unwrap();
    assert_eq!(listed, [fixbox_store::SecretListing { name: name.clone(), hint: Some("…WXYZ".into()) }]);
    assert_eq!(keychain.get(&name).unwrap().unwrap().expose(), value);
    drop(store);
    for file in ["fixbox.db", "fixbox.db-wal", "fixbox.db-shm"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(!bytes.windows(value.len()).any(|w| w == value.as_bytes()), "{file} holds the key");
    }
    let store = fixbox_store::Store::open_at(&db).unwrap();
    assert!(keychain.remove(&store, &name).unwrap());
    assert!(!keychain.remove(&store, &name).unwrap());
    assert!(keychain.list(&store).unwrap().is_empty());
    assert_eq!(keychain.get(&name).unwrap(), None);
    assert!(keychain.store(&store, "Bad Name", &Secret::new(value)).is_err());
}
