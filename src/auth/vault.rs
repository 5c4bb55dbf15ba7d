//! Where the store's records live: files in the config directory, or the OS keychain.
//!
//! A record is named `tokens/<key>` or `clients/<hash>`, and a [`Vault`] maps names to
//! bytes. The store above it does the JSON; the vault does the keeping.
//! - [`Files`]: `<dir>/<name>.json`, written atomically with mode 0600 in a 0700
//!   directory.
//! - [`Keychain`]: one keychain entry per record (the macOS Keychain, the Windows
//!   Credential Manager, or the Secret Service on Linux), under the service
//!   `clerk-mcp-server <dir>` so that two config directories never share entries.
//!   Keychains cannot list what they hold, so an empty marker file `<dir>/<name>.keychain`
//!   names each record kept there; it holds nothing secret. A record longer than
//!   [`ENTRY_LIMIT`] is split over several entries ([`Split`]).
//! - With the keychain chosen, records still in files are moved into the keychain when
//!   it is opened (and any found later when first read), and the files removed:
//!   switching needs no new sign-in.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Windows Credential Manager's cap on one entry's secret (CRED_MAX_CREDENTIAL_BLOB_SIZE).
/// We keep every platform under it, so a store moves between systems unchanged and the
/// split is exercised wherever the tests run.
pub(crate) const ENTRY_LIMIT: usize = 2560;

/// At most this many parts per record: 160 KiB, far above any token set, and a bound on
/// what a corrupt head entry can make us read.
const MAX_PARTS: usize = 64;

/// The head entry of a split record: `clerk-mcp-server split <generation> <parts>`.
const SPLIT_HEAD: &str = "clerk-mcp-server split ";

/// Keeps the store's records by name.
pub(crate) trait Vault: Send + Sync {
    fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Whether there was a record to remove.
    fn remove(&self, name: &str) -> io::Result<bool>;
    /// The names of the records of one kind (`tokens` or `clients`), without the kind.
    fn names(&self, kind: &str) -> Vec<String>;
    /// Whether records are pretty-printed (files are read by people; entries are not).
    fn pretty(&self) -> bool;
    /// The token records kept in the other vault (the keychain, seen from files), for a
    /// note: they are neither listed nor removed from here.
    fn elsewhere(&self) -> Vec<String>;
}

/// Records as files under the config directory.
pub(crate) struct Files {
    dir: PathBuf,
}

impl Files {
    pub(crate) fn new(dir: PathBuf) -> Files {
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// The stems of the files in `<dir>/<kind>` that end in `suffix`.
    fn stems(&self, kind: &str, suffix: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(kind)) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                Some(name.strip_suffix(suffix)?.to_owned())
            })
            .collect()
    }
}

impl Vault for Files {
    fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", self.path(name).display()),
            )),
        }
    }

    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        write_private(&self.path(name), bytes)
    }

    fn remove(&self, name: &str) -> io::Result<bool> {
        remove_file(&self.path(name))
    }

    fn names(&self, kind: &str) -> Vec<String> {
        self.stems(kind, ".json")
    }

    fn pretty(&self) -> bool {
        true
    }

    fn elsewhere(&self) -> Vec<String> {
        self.stems("tokens", ".keychain")
    }
}

/// The raw entries of a keychain: what [`Split`] needs of one.
pub(crate) trait Slots: Send + Sync {
    fn read(&self, account: &str) -> Result<Option<Vec<u8>>, String>;
    fn write(&self, account: &str, bytes: &[u8]) -> Result<(), String>;
    fn erase(&self, account: &str) -> Result<(), String>;
}

/// How long one keychain call may take. A locked keychain may wait on its password
/// prompt, or a Secret Service may never answer; the proxy must still answer its client
/// in bounded time, so past this the call is an error (and its thread is left behind).
pub(crate) const KEYCHAIN_WAIT: Duration = Duration::from_secs(20);

/// The platform keychain, through the `keyring` crate.
pub(crate) struct Platform {
    service: String,
}

impl Platform {
    /// `op` on the entry for `account`, on a thread of its own, for at most
    /// [`KEYCHAIN_WAIT`]: keyring's calls block, and may block for good.
    fn call<T: Send + 'static>(
        &self,
        account: &str,
        op: impl FnOnce(keyring::Entry) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let entry = keyring::Entry::new(&self.service, account).map_err(|e| e.to_string())?;
        bounded(KEYCHAIN_WAIT, move || op(entry))
    }
}

/// `f` on a new thread, waiting at most `wait` for its answer.
fn bounded<T: Send + 'static>(
    wait: Duration,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("keychain".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start a thread for it: {e}"))?;
    rx.recv_timeout(wait).unwrap_or_else(|_| {
        Err(format!(
            "no answer within {} s (locked, and waiting for its password?)",
            wait.as_secs()
        ))
    })
}

impl Slots for Platform {
    fn read(&self, account: &str) -> Result<Option<Vec<u8>>, String> {
        self.call(account, |entry| match entry.get_secret() {
            Ok(bytes) => Ok(Some(bytes)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        })
    }

    fn write(&self, account: &str, bytes: &[u8]) -> Result<(), String> {
        let bytes = bytes.to_vec();
        self.call(account, move |entry| {
            entry.set_secret(&bytes).map_err(|e| e.to_string())
        })
    }

    fn erase(&self, account: &str) -> Result<(), String> {
        self.call(account, |entry| match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        })
    }
}

/// Records of any length over entries of at most [`ENTRY_LIMIT`] bytes.
///
/// A record that fits is one entry holding it. A longer one is written as parts named
/// `<name>#<generation>.<i>`, then a head entry naming the generation and the count, then
/// the previous generation's parts are erased: a reader that sees a head finds all of its
/// parts, unless a writer replaced them in between, and then it reads the new head again.
pub(crate) struct Split<S> {
    slots: S,
}

impl<S: Slots> Split<S> {
    pub(crate) fn new(slots: S) -> Split<S> {
        Split { slots }
    }

    /// The generation and part count a head entry names, if it is one.
    fn head(bytes: &[u8]) -> Option<(String, usize)> {
        let rest = std::str::from_utf8(bytes).ok()?.strip_prefix(SPLIT_HEAD)?;
        let (generation, parts) = rest.split_once(' ')?;
        let parts = parts.parse().ok().filter(|n| (1..=MAX_PARTS).contains(n))?;
        let plain = generation.bytes().all(|b| b.is_ascii_alphanumeric());
        plain.then(|| (generation.to_owned(), parts))
    }

    fn part(name: &str, generation: &str, i: usize) -> String {
        format!("{name}#{generation}.{i}")
    }

    fn erase_parts(&self, name: &str, head: Option<(String, usize)>) -> Result<(), String> {
        if let Some((generation, parts)) = head {
            for i in 0..parts {
                self.slots.erase(&Self::part(name, &generation, i))?;
            }
        }
        Ok(())
    }

    pub(crate) fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        // Twice: a writer may replace the parts between our reading the head and them.
        for _ in 0..2 {
            let Some(first) = self.slots.read(name)? else {
                return Ok(None);
            };
            let Some((generation, parts)) = Self::head(&first) else {
                return Ok(Some(first));
            };
            let mut whole = Vec::with_capacity(parts * ENTRY_LIMIT);
            for i in 0..parts {
                match self.slots.read(&Self::part(name, &generation, i))? {
                    Some(bytes) => whole.extend_from_slice(&bytes),
                    None => break,
                }
            }
            if whole.len() > (parts - 1) * ENTRY_LIMIT {
                return Ok(Some(whole));
            }
        }
        Err(format!(
            "the keychain entry {name} is split, and a part of it is missing"
        ))
    }

    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let old = self.slots.read(name)?.and_then(|b| Self::head(&b));
        if bytes.len() <= ENTRY_LIMIT && Self::head(bytes).is_none() {
            self.slots.write(name, bytes)?;
        } else {
            let parts = bytes.len().div_ceil(ENTRY_LIMIT);
            if parts > MAX_PARTS {
                return Err(format!(
                    "{name} is {} bytes: more than a keychain record may hold",
                    bytes.len()
                ));
            }
            let generation = generation();
            for (i, chunk) in bytes.chunks(ENTRY_LIMIT).enumerate() {
                self.slots.write(&Self::part(name, &generation, i), chunk)?;
            }
            let head = format!("{SPLIT_HEAD}{generation} {parts}");
            self.slots.write(name, head.as_bytes())?;
        }
        self.erase_parts(name, old)
    }

    /// Whether there was a record.
    pub(crate) fn erase(&self, name: &str) -> Result<bool, String> {
        let Some(first) = self.slots.read(name)? else {
            return Ok(false);
        };
        self.slots.erase(name)?;
        self.erase_parts(name, Self::head(&first))?;
        Ok(true)
    }
}

/// A fresh name for a split record's parts.
fn generation() -> String {
    let mut bytes = [0u8; 6];
    // A repeated generation would only make a reader retry: a weak source is harmless.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Records in the OS keychain, with marker files to list them.
pub(crate) struct Keychain<S = Platform> {
    split: Split<S>,
    files: Files,
}

/// The keychain could not be reached; the reason, in the platform's words.
#[derive(Debug)]
pub(crate) struct Unreachable(pub(crate) String);

impl Keychain<Platform> {
    /// The platform keychain for records of `dir`, if one answers. Reading an entry that
    /// does not exist asks the keychain without touching anything, and without a prompt.
    pub(crate) fn open(dir: PathBuf) -> Result<Keychain<Platform>, Unreachable> {
        let service = format!("clerk-mcp-server {}", dir.display());
        let keychain = Keychain::with(Platform { service }, dir);
        match keychain.split.slots.read("reachable?") {
            Ok(_) => {
                keychain.adopt_files();
                Ok(keychain)
            }
            Err(why) => Err(Unreachable(why)),
        }
    }
}

impl<S: Slots> Keychain<S> {
    pub(crate) fn with(slots: S, dir: PathBuf) -> Keychain<S> {
        Keychain {
            split: Split::new(slots),
            files: Files::new(dir),
        }
    }

    fn marker(&self, name: &str) -> PathBuf {
        self.files.dir.join(format!("{name}.keychain"))
    }

    /// Every record left in files from before the keychain was chosen: into the keychain
    /// with them at once, so no secret stays on disk until its record is next needed.
    fn adopt_files(&self) {
        for kind in ["tokens", "clients"] {
            for stem in self.files.stems(kind, ".json") {
                let name = format!("{kind}/{stem}");
                // The file wins over an entry of the same name: it was written since
                // (a sign-in made with files chosen).
                if let Err(e) = self.adopt_file(&name) {
                    tracing::warn!(record = name, "cannot move it into the OS keychain: {e}");
                }
            }
        }
    }

    /// A record left in a file from before the keychain was chosen: into the keychain
    /// with it, and the file goes.
    fn adopt_file(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let Some(bytes) = self.files.get(name)? else {
            return Ok(None);
        };
        self.put(name, &bytes)?;
        self.files.remove(name)?;
        tracing::info!(record = name, "moved from its file into the OS keychain");
        Ok(Some(bytes))
    }
}

fn keychain_error(why: String) -> io::Error {
    io::Error::other(format!("the OS keychain: {why}"))
}

impl<S: Slots> Vault for Keychain<S> {
    fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match self.split.read(name).map_err(keychain_error)? {
            Some(bytes) => Ok(Some(bytes)),
            None => self.adopt_file(name),
        }
    }

    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.split.write(name, bytes).map_err(keychain_error)?;
        write_private(&self.marker(name), b"")
    }

    fn remove(&self, name: &str) -> io::Result<bool> {
        let had = self.split.erase(name).map_err(keychain_error)?;
        let marked = remove_file(&self.marker(name))?;
        let filed = self.files.remove(name)?;
        Ok(had || marked || filed)
    }

    fn names(&self, kind: &str) -> Vec<String> {
        let mut names = self.files.stems(kind, ".keychain");
        names.extend(self.files.stems(kind, ".json"));
        names.sort();
        names.dedup();
        names
    }

    fn pretty(&self) -> bool {
        false
    }

    fn elsewhere(&self) -> Vec<String> {
        Vec::new()
    }
}

fn remove_file(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Only the user may list or enter the token directories.
        for d in [dir, dir.parent().unwrap_or(dir)] {
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700));
        }
    }
    Ok(())
}

/// Write atomically: a 0600 temp file in the same directory, then rename over.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("has a parent");
    ensure_dir(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// A keychain in memory, with the Windows cap enforced on every entry.
    #[derive(Default)]
    struct Memory(Mutex<BTreeMap<String, Vec<u8>>>);

    impl Slots for &Memory {
        fn read(&self, account: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.lock().unwrap().get(account).cloned())
        }
        fn write(&self, account: &str, bytes: &[u8]) -> Result<(), String> {
            if bytes.len() > ENTRY_LIMIT {
                return Err(format!("{account}: {} bytes is over the cap", bytes.len()));
            }
            self.0
                .lock()
                .unwrap()
                .insert(account.to_owned(), bytes.to_vec());
            Ok(())
        }
        fn erase(&self, account: &str) -> Result<(), String> {
            self.0.lock().unwrap().remove(account);
            Ok(())
        }
    }

    #[test]
    fn records_over_the_windows_cap_are_split() {
        let memory = Memory::default();
        let split = Split::new(&memory);
        let small = b"{\"a\":1}".to_vec();
        split.write("tokens/s", &small).unwrap();
        assert_eq!(split.read("tokens/s").unwrap(), Some(small));

        // A token set with three long JWTs: 7,000 bytes, three parts and a head.
        let big: Vec<u8> = (0..7000).map(|i| b'a' + (i % 26) as u8).collect();
        split.write("tokens/b", &big).unwrap();
        assert_eq!(split.read("tokens/b").unwrap().as_deref(), Some(&big[..]));
        let entries = memory.0.lock().unwrap().clone();
        assert_eq!(
            entries.keys().filter(|k| k.starts_with("tokens/b")).count(),
            4
        );
        assert!(entries.values().all(|v| v.len() <= ENTRY_LIMIT));

        // Rewritten shorter: the old parts go.
        let medium = vec![b'm'; ENTRY_LIMIT + 1];
        split.write("tokens/b", &medium).unwrap();
        assert_eq!(split.read("tokens/b").unwrap(), Some(medium));
        let left = memory.0.lock().unwrap().len();
        assert_eq!(
            left,
            1 + 1 + 2,
            "small, and big: its head and two new parts"
        );

        // Exactly at the cap is one entry; a record that looks like a head is split so
        // it reads back as itself.
        let edge = vec![b'e'; ENTRY_LIMIT];
        split.write("tokens/e", &edge).unwrap();
        assert_eq!(memory.0.lock().unwrap()["tokens/e"], edge);
        let tricky = format!("{SPLIT_HEAD}abc 2").into_bytes();
        split.write("tokens/t", &tricky).unwrap();
        assert_eq!(split.read("tokens/t").unwrap(), Some(tricky));

        assert!(split.erase("tokens/b").unwrap());
        assert!(!split.erase("tokens/b").unwrap());
        assert!(
            memory
                .0
                .lock()
                .unwrap()
                .keys()
                .all(|k| !k.starts_with("tokens/b"))
        );
        assert!(
            split
                .write("tokens/huge", &vec![0; 65 * ENTRY_LIMIT])
                .is_err()
        );
    }

    #[test]
    fn a_keychain_that_never_answers_is_an_error_in_bounded_time() {
        let (_hold, parked) = std::sync::mpsc::channel::<()>();
        let err = bounded(Duration::from_millis(50), move || {
            let _ = parked.recv();
            Ok(())
        })
        .unwrap_err();
        assert!(err.contains("no answer within"), "{err}");
        assert_eq!(bounded(Duration::from_secs(5), || Ok(7)), Ok(7));
    }

    #[test]
    fn a_missing_part_is_an_error_not_a_short_record() {
        let memory = Memory::default();
        let split = Split::new(&memory);
        split
            .write("tokens/b", &vec![b'x'; 3 * ENTRY_LIMIT])
            .unwrap();
        let part = memory
            .0
            .lock()
            .unwrap()
            .keys()
            .find(|k| k.ends_with(".1"))
            .cloned()
            .unwrap();
        memory.0.lock().unwrap().remove(&part);
        let err = split.read("tokens/b").unwrap_err();
        assert!(err.contains("tokens/b") && err.contains("missing"), "{err}");
        // A head that names absurd counts is taken as a plain record, never followed.
        memory.0.lock().unwrap().insert(
            "tokens/c".into(),
            format!("{SPLIT_HEAD}g 100000").into_bytes(),
        );
        assert!(split.read("tokens/c").unwrap().is_some());
    }

    #[test]
    fn files_move_into_the_keychain_and_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::default();
        Files::new(dir.path().into())
            .put("tokens/old", b"{\"filed\":true}")
            .unwrap();
        let keychain = Keychain::with(&memory, dir.path().into());
        keychain.put("tokens/new", b"{}").unwrap();
        assert_eq!(keychain.names("tokens"), ["new", "old"]);
        assert_eq!(
            keychain.get("tokens/old").unwrap().as_deref(),
            Some(&b"{\"filed\":true}"[..])
        );
        assert!(
            !dir.path().join("tokens/old.json").exists(),
            "the file went"
        );
        assert!(dir.path().join("tokens/old.keychain").exists());
        assert!(memory.0.lock().unwrap().contains_key("tokens/old"));
        assert!(keychain.remove("tokens/old").unwrap());
        assert_eq!(keychain.names("tokens"), ["new"]);
        assert_eq!(keychain.get("tokens/old").unwrap(), None);
    }
}
