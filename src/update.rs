//! `clerk-mcp-server self-update`: replace this binary with a newer release.
//!
//! - The asset is the one built for exactly this target, matched by its full name (a
//!   substring match would also pick the `.sha256` file).
//! - It is checked against the release's `<asset>.sha256` before anything is replaced,
//!   and the new binary must report the expected version; a failure leaves the old binary
//!   in place (the swap itself is an atomic rename).
//! - Never prompts; progress goes to stderr.
//! - Refuses when a package manager owns the binary, naming the right command.
//! - Runs outside the async runtime: the blocking HTTP client must not live inside one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::SelfUpdateArgs;

pub const TARGET: &str = env!("CLERK_MCP_TARGET");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const REPO_OWNER: &str = "clerk";
const REPO_NAME: &str = "mcp-server";
const BIN: &str = "clerk-mcp-server";

/// How this copy was installed, as far as we can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Installer {
    /// cargo-dist's shell or PowerShell installer (its receipt names our directory).
    Dist,
    Nix,
    Homebrew,
    Npm,
    Container,
    Unknown,
}

impl Installer {
    fn refusal(&self) -> Option<&'static str> {
        match self {
            Installer::Dist => None,
            Installer::Nix => Some(
                "it lives in the Nix store; update it through Nix (e.g. `nix profile upgrade`, or your flake inputs)",
            ),
            Installer::Homebrew => {
                Some("it was installed by Homebrew; run `brew upgrade clerk-mcp-server`")
            }
            Installer::Npm => Some(
                "it was installed by npm; run `npm update -g @clerk/mcp-server` (npx users: `npx -y @clerk/mcp-server@latest`)",
            ),
            Installer::Container => Some(
                "it runs inside the container image; pull a newer image: `docker pull clerk/mcp-server`",
            ),
            Installer::Unknown => Some(
                "no cargo-dist install receipt names this binary's directory; reinstall with the shell or PowerShell installer, or update the way you installed it (e.g. `cargo install clerk-mcp-server --force`)",
            ),
        }
    }
}

/// Decide who owns `exe`. `receipt_dir` is where cargo-dist's installer leaves its receipt.
pub fn detect(exe: &Path, receipt_dir: Option<&Path>, in_container: bool) -> Installer {
    let path = exe.to_string_lossy();
    if in_container {
        return Installer::Container;
    }
    if path.starts_with("/nix/store/") {
        return Installer::Nix;
    }
    if path.contains("/Cellar/") || path.contains("/homebrew/") || path.contains("/linuxbrew/") {
        return Installer::Homebrew;
    }
    if path.contains("node_modules") {
        return Installer::Npm;
    }
    let Some(dir) = receipt_dir else {
        return Installer::Unknown;
    };
    let receipt = dir.join(format!("{BIN}-receipt.json"));
    let Ok(text) = std::fs::read_to_string(&receipt) else {
        return Installer::Unknown;
    };
    let install_dir = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["install_prefix"].as_str().map(PathBuf::from));
    match (install_dir, exe.parent()) {
        (Some(prefix), Some(parent))
            if same_dir(&prefix, parent) || same_dir(&prefix.join("bin"), parent) =>
        {
            Installer::Dist
        }
        _ => Installer::Unknown,
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Where cargo-dist's installers keep the receipt (`$XDG_CONFIG_HOME` or `~/.config`,
/// `%LOCALAPPDATA%` on Windows).
fn receipt_dir() -> Option<PathBuf> {
    let base = if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA").map(PathBuf::from)
    } else {
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
    };
    base.map(|b| b.join(BIN))
}

/// The release asset for this exact build.
pub fn asset_name() -> String {
    let ext = if TARGET.contains("windows") {
        "zip"
    } else {
        "tar.xz"
    };
    format!("{BIN}-{TARGET}.{ext}")
}

pub fn run(args: &SelfUpdateArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let in_container = std::env::var_os("CLERK_MCP_IN_CONTAINER").is_some();
    let installer = detect(&exe, receipt_dir().as_deref(), in_container);
    let api = args
        .api_url
        .clone()
        .unwrap_or_else(|| "https://api.github.com".to_owned());
    let client = blocking_client()?;
    let asset = asset_name();
    let mut builder = self_update::backends::github::Update::configure();
    builder
        .repo_owner(REPO_OWNER)
        .repo_name(REPO_NAME)
        .api_base_url(api.trim_end_matches('/'))
        .bin_name(BIN)
        .target(TARGET)
        .current_version(VERSION)
        .bin_path_in_archive("{{ bin }}-{{ target }}/{{ bin }}")
        .reqwest_client(client)
        .no_confirm(true)
        .show_output(false)
        .show_download_progress(!args.check)
        .checksum_from_asset(format!("{asset}.sha256"));
    {
        let exact = asset.clone();
        builder.asset_matcher(move |assets| assets.iter().find(|a| a.name() == exact).cloned());
    }
    if let Some(v) = &args.version {
        builder.release_tag(format!("v{}", v.trim_start_matches('v')));
    }
    let updater = builder.build().context("cannot set up the updater")?;

    let wanted = match &args.version {
        Some(v) => updater
            .get_release_version(&format!("v{}", v.trim_start_matches('v')))
            .map_err(|e| lookup_failed(&e, &api, &format!("release {v}")))?,
        None => {
            let latest = updater
                .get_latest_release()
                .map_err(|e| lookup_failed(&e, &api, "the latest release"))?;
            let Some(latest) = latest.latest().cloned() else {
                bail!("the releases list is empty");
            };
            latest
        }
    };
    let newer = self_update::version::bump_is_greater(VERSION, wanted.version()).unwrap_or(false);
    if args.check {
        if newer {
            println!(
                "A newer version is available: {} (this is {VERSION}). Run `{BIN} self-update`.",
                wanted.version()
            );
        } else {
            println!("{BIN} {VERSION} is up to date.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.version.is_none() && !newer {
        println!("{BIN} {VERSION} is up to date.");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(why) = installer.refusal() {
        eprintln!("clerk-mcp-server: not updating {}: {why}.", exe.display());
        return Ok(ExitCode::from(1));
    }
    if !wanted.assets().iter().any(|a| a.name() == asset) {
        bail!(
            "release {} has no asset {asset} for this platform",
            wanted.version()
        );
    }
    let expected = wanted.version().to_owned();
    builder.verify_binary(move |new_bin| {
        let out = std::process::Command::new(new_bin)
            .arg("--version")
            .output()
            .map_err(|e| {
                self_update::errors::Error::verification_rejected(format!(
                    "the new binary does not run: {e}"
                ))
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim() == format!("{BIN} {expected}") {
            Ok(())
        } else {
            Err(self_update::errors::Error::verification_rejected(format!(
                "the new binary reports {:?}, not version {expected}",
                text.trim()
            )))
        }
    });
    let status = builder
        .build()
        .context("cannot set up the updater")?
        .update()
        .map_err(|e| anyhow::anyhow!("update failed, the installed binary is unchanged: {e}"))?;
    println!("Updated {BIN} from {VERSION} to {}.", status.version());
    Ok(ExitCode::SUCCESS)
}

/// A release lookup that failed, in one line: what could not be reached, why, and
/// what to do (the updater's own error repeats the URL and every layer of the cause).
fn lookup_failed(e: &self_update::errors::Error, api: &str, what: &str) -> anyhow::Error {
    let host = url::Url::parse(api)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| api.to_owned());
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<reqwest::Error>() {
            let why = crate::error::RemoteError::from_reqwest(&host, r, 30.0);
            return anyhow::anyhow!(
                "cannot look up {what}: {why}; check your network and proxy settings \
                 (HTTPS_PROXY), or download a release from \
                 https://github.com/{REPO_OWNER}/{REPO_NAME}/releases"
            );
        }
        source = s.source();
    }
    anyhow::anyhow!("cannot look up {what} at {host}: {e}")
}

/// Our TLS setup for the blocking client: rustls with ring and compiled-in roots.
fn blocking_client() -> anyhow::Result<reqwest::blocking::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots: Vec<reqwest::Certificate> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
        .collect();
    reqwest::blocking::Client::builder()
        .tls_certs_only(roots)
        .user_agent(concat!("clerk-mcp-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_managers_are_recognized() {
        let d = |p: &str| detect(Path::new(p), None, false);
        assert_eq!(
            d("/nix/store/abc-clerk-mcp-server/bin/clerk-mcp-server"),
            Installer::Nix
        );
        assert_eq!(
            d("/opt/homebrew/Cellar/clerk-mcp-server/1.0/bin/clerk-mcp-server"),
            Installer::Homebrew
        );
        assert_eq!(
            d("/home/u/.npm/_npx/x/node_modules/@clerk/mcp-server/bin/clerk-mcp-server"),
            Installer::Npm
        );
        assert_eq!(d("/usr/local/bin/clerk-mcp-server"), Installer::Unknown);
        assert_eq!(
            detect(Path::new("/clerk-mcp-server"), None, true),
            Installer::Container
        );
    }

    #[test]
    fn receipt_names_the_install_directory() {
        let dir = tempfile::tempdir().unwrap();
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        let receipts = dir.path().join("receipts");
        std::fs::create_dir_all(&receipts).unwrap();
        std::fs::write(
            receipts.join("clerk-mcp-server-receipt.json"),
            serde_json::json!({"install_prefix": bin_dir}).to_string(),
        )
        .unwrap();
        let exe = bin_dir.join("clerk-mcp-server");
        assert_eq!(detect(&exe, Some(&receipts), false), Installer::Dist);
        assert_eq!(
            detect(
                Path::new("/elsewhere/clerk-mcp-server"),
                Some(&receipts),
                false
            ),
            Installer::Unknown
        );
    }

    #[test]
    fn exact_asset_name() {
        assert!(asset_name().starts_with("clerk-mcp-server-"));
        assert!(asset_name().contains(TARGET));
    }
}
