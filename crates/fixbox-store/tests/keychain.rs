//! Against the real OS keychain: on Linux, the Secret Service that `scripts/test` starts
//! (gnome-keyring inside `dbus-run-session`).

use fixbox_store::{Keychain, Secret};

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
