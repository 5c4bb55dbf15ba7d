//! `--token-store keychain` against a real Secret Service: Debian's gnome-keyring on a
//! D-Bus session bus that the test starts itself. `.ci/run` installs the packages
//! (dbus-daemon, gnome-keyring, libsecret-tools) and runs the ignored test through
//! `scripts/ignored-test.sh`.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::auth::run_cli;
use crate::support::oauth::{Dpop, OAuthMock, OAuthOptions, SignInEnv, whoami};

/// A private session bus whose `org.freedesktop.secrets` is gnome-keyring, unlocked
/// with a login keyring of its own. The bus starts the keyring on the first call to
/// that name (D-Bus activation), so nobody waits for it to come up. Both go with the
/// value: the keyring leaves when its bus does.
struct SecretService {
    dir: tempfile::TempDir,
    address: String,
    _bus: tokio::process::Child,
}

/// The keyring the bus starts: unlocked, with a login keyring created on first use.
const GNOME_KEYRING: &str = "/bin/sh -c \"printf test-password | exec gnome-keyring-daemon \
                             --foreground --unlock --components=secrets\"";

impl SecretService {
    /// A bus that runs `exec` as the Secret Service.
    async fn start(exec: &str) -> SecretService {
        for tool in ["dbus-daemon", "gnome-keyring-daemon", "secret-tool"] {
            assert!(
                which(tool),
                "{tool} is missing: apt-get install dbus-daemon gnome-keyring libsecret-tools"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["home", "run", "services"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        std::fs::write(
            root.join("services/org.freedesktop.secrets.service"),
            format!("[D-BUS Service]\nName=org.freedesktop.secrets\nExec={exec}\n"),
        )
        .unwrap();
        let socket = root.join("bus");
        std::fs::write(
            root.join("session.conf"),
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <!-- Longer than the proxy's own bound on a keychain call. -->
  <limit name="service_start_timeout">120000</limit>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display(),
                root.join("services").display()
            ),
        )
        .unwrap();
        let mut bus = tokio::process::Command::new("dbus-daemon")
            .arg(format!(
                "--config-file={}",
                root.join("session.conf").display()
            ))
            .args(["--nofork", "--print-address=1"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("XDG_RUNTIME_DIR", root.join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its notes (activations, an fd limit it may not raise) are not ours to show.
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start dbus-daemon");
        // The bus prints its address once it listens.
        let mut lines = BufReader::new(bus.stdout.take().unwrap()).lines();
        let address = tokio::time::timeout(crate::support::WAIT, lines.next_line())
            .await
            .expect("dbus-daemon prints its address")
            .unwrap()
            .expect("dbus-daemon exited before listening");
        SecretService {
            dir,
            address,
            _bus: bus,
        }
    }

    fn env(&self) -> [(&str, &str); 1] {
        [("DBUS_SESSION_BUS_ADDRESS", self.address.as_str())]
    }

    /// `secret-tool search --all service <service>`: (account, secret length, its first
    /// characters) for every item of that service.
    async fn items(&self, service: &str) -> Vec<(String, usize, String)> {
        let out = tokio::process::Command::new("secret-tool")
            .args(["search", "--all", "--unlock", "service", service])
            .env_clear()
            .env("HOME", self.dir.path().join("home"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .await
            .unwrap();
        // secret-tool prints each item's label and secret on stdout (its attributes go to
        // stderr); keyring labels an item `<account>@<service>:<target> (keyring vX)`.
        let text = String::from_utf8_lossy(&out.stdout);
        let mut items = Vec::new();
        let mut account = None;
        for line in text.lines() {
            if let Some(label) = line.strip_prefix("label = ") {
                account = label.split_once('@').map(|(a, _)| a.to_owned());
            } else if let Some(secret) = line.strip_prefix("secret = ") {
                let account = account.take().expect("a label before each secret");
                items.push((account, secret.len(), secret.chars().take(24).collect()));
            }
        }
        items
    }
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
}

/// Every file under `dir`, with its path relative to `dir`.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A-KEYCHAIN: a sign-in made with files moves into the Secret Service when the keychain
/// is chosen; tokens, the registration and the DPoP key then live there, and the config
/// directory holds only markers and locks; a later start uses them without a new
/// sign-in; a token set over the Windows cap is split; `status` and `logout --all`
/// reach them.
#[tokio::test]
#[ignore = "needs dbus-daemon, gnome-keyring and secret-tool: .ci/run installs them and runs it"]
async fn keychain_on_a_real_secret_service() {
    let secrets = SecretService::start(GNOME_KEYRING).await;
    let as_ = OAuthMock::start(OAuthOptions {
        id_tokens: true,
        long_tokens: true,
        dpop: Dpop::On,
        ..Default::default()
    })
    .await;
    let env = SignInEnv::new();
    let config = env.config();
    let keychain = ["--token-store", "keychain"];

    // Signed in with files first: the keychain takes the records over when chosen.
    let mut filed = env.spawn(&as_.url, &[], &secrets.env());
    filed.initialize("2025-11-25").await;
    whoami(&mut filed, 1).await;
    let token = as_.last_credential();
    assert!(token.len() > 3000, "the mock's long token: {}", token.len());
    filed.finish().await;
    let on_disk = |dir: &str| {
        let names = files(&Path::new(&config).join(dir));
        names.iter().filter(|(n, _)| n.ends_with(".json")).count()
    };
    assert_eq!((on_disk("tokens"), on_disk("clients")), (1, 1));

    let mut first = env.spawn(&as_.url, &keychain, &secrets.env());
    first.initialize("2025-11-25").await;
    whoami(&mut first, 1).await;
    assert_eq!(as_.last_credential(), token, "the moved token");
    let (_, stderr) = first.finish().await;
    assert!(
        stderr.contains("moved from its file into the OS keychain"),
        "{stderr}"
    );

    // Nothing secret in the config directory: markers and locks (and the times the
    // browser was opened, which rate-limit it).
    let kept: Vec<_> = files(Path::new(&config))
        .into_iter()
        .filter(|(name, _)| name != "browser-opens")
        .collect();
    let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("tokens/") && n.ends_with(".keychain"))
            && names
                .iter()
                .any(|n| n.starts_with("clients/") && n.ends_with(".keychain")),
        "{names:?}"
    );
    for (name, bytes) in &kept {
        assert!(
            name.ends_with(".keychain") || name.ends_with(".lock"),
            "a record outside the keychain: {name}"
        );
        assert!(bytes.is_empty(), "{name} holds {} bytes", bytes.len());
    }

    // In the Secret Service: the registration, and the token record split into parts
    // of at most 2,560 bytes behind a head entry.
    let items = secrets.items(&format!("clerk-mcp-server {config}")).await;
    let of = |kind: &str| -> Vec<&(String, usize, String)> {
        items.iter().filter(|i| i.0.starts_with(kind)).collect()
    };
    assert_eq!(of("clients/").len(), 1, "{items:?}");
    let tokens = of("tokens/");
    assert!(
        tokens.len() >= 4,
        "a head and at least three parts: {items:?}"
    );
    assert!(tokens.iter().all(|i| i.1 <= 2560), "{items:?}");
    assert_eq!(
        tokens
            .iter()
            .filter(|i| i.2.starts_with("clerk-mcp-server split "))
            .count(),
        1,
        "{items:?}"
    );

    // A second start signs in with what the keychain kept, DPoP key included (the mock
    // accepts the token only with proofs from the key it is bound to).
    let mut second = env.spawn(&as_.url, &keychain, &secrets.env());
    second.initialize("2025-11-25").await;
    whoami(&mut second, 1).await;
    assert_eq!(as_.last_credential(), token, "the kept token");
    second.finish().await;
    assert_eq!(as_.seen.lock().unwrap().authorizations.len(), 1);

    // `status` reads the keychain when told to, and files otherwise: never a mix.
    let status = |store: &'static str| {
        let (env, config, secrets) = (&env, config.clone(), &secrets);
        async move {
            let args = [
                "status",
                "--json",
                "--config-dir",
                &config,
                "--token-store",
                store,
            ];
            let out = run_cli(env, &args, &secrets.env()).await;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            list.as_array().unwrap().clone()
        }
    };
    let listed = status("keychain").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["server"], as_.url);
    assert_eq!(listed[0]["account"], "user-1");
    assert_eq!(listed[0]["dpop_bound"], true);
    assert!(status("file").await.is_empty());
    // With files chosen, a note says where the sign-in is, and `logout --all` leaves it.
    for args in [
        &["status", "--config-dir", &config][..],
        &["logout", "--all", "--config-dir", &config],
    ] {
        let out = run_cli(&env, args, &secrets.env()).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("1 sign-in is kept in the OS keychain: add --token-store keychain"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(status("keychain").await.len(), 1);

    // `logout --all` empties the keychain of ours.
    let out = run_cli(
        &env,
        &[
            "logout",
            "--all",
            "--config-dir",
            &config,
            "--token-store",
            "keychain",
        ],
        &secrets.env(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status("keychain").await.is_empty());
    let left = secrets.items(&format!("clerk-mcp-server {config}")).await;
    assert!(left.is_empty(), "{left:?}");
}

/// A-KEYCHAIN: no keychain at all (no session bus: SSH, a container): every command that would keep
/// tokens stops at once with an error naming `--token-store file`, and writes no file.
#[tokio::test]
async fn no_keychain_is_an_error_naming_the_file_store() {
    let env = SignInEnv::new();
    let config = env.config();
    let run = env.path("run");
    std::fs::create_dir(&run).unwrap();
    // No bus address, and a runtime directory without a bus socket in it.
    let no_bus = [("XDG_RUNTIME_DIR", run.as_str())];
    let url = "http://127.0.0.1:9/mcp";
    let commands: [&[&str]; 4] = [
        &[url, "--token-store", "keychain", "--config-dir", &config],
        &[
            "login",
            url,
            "--token-store",
            "keychain",
            "--config-dir",
            &config,
        ],
        &[
            "status",
            "--token-store",
            "keychain",
            "--config-dir",
            &config,
        ],
        &[
            "logout",
            "--all",
            "--token-store",
            "keychain",
            "--config-dir",
            &config,
        ],
    ];
    for args in commands {
        let out = run_cli(&env, args, &no_bus).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("no OS keychain answers") && err.contains("--token-store file"),
            "{args:?}: {err}"
        );
    }
    // The environment variable chooses it too.
    let out = run_cli(
        &env,
        &["status", "--config-dir", &config],
        &[no_bus[0], ("CLERK_MCP_TOKEN_STORE", "keychain")],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-store file"));
    assert!(!Path::new(&config).exists(), "nothing written");
}

/// A-KEYCHAIN: a Secret Service that never answers (a keychain waiting on a prompt nobody sees): the
/// proxy stops with the no-keychain error after its bound, instead of leaving the client
/// waiting on a process that never reads its input.
#[tokio::test]
#[ignore = "needs dbus-daemon, and waits out the 20 s bound: .ci/run runs it"]
async fn a_keychain_that_never_answers() {
    let secrets = SecretService::start("/bin/sleep 600").await;
    let env = SignInEnv::new();
    let config = env.config();
    let started = std::time::Instant::now();
    // Not run_cli: its wait is shorter than the bound under test.
    let run = tokio::process::Command::new(crate::support::BIN)
        .args(["http://127.0.0.1:9/mcp", "--token-store", "keychain"])
        .args(["--config-dir", &config])
        .env_clear()
        .env("HOME", env.dir.path())
        .envs(secrets.env())
        .stdin(Stdio::piped())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the proxy stops within the bound")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no answer within 20 s") && err.contains("--token-store file"),
        "{err}"
    );
    // The bound, not the bus's own activation timeout (120 s), ended it.
    assert!(started.elapsed() >= std::time::Duration::from_secs(20));
}
