# OFFLINE STAND-IN for `nixpkgs.legacyPackages.${system}`: only the attributes that
# /flake.nix uses, each producing a small derivation made with `builtins.derivation`
# and the host's /bin/sh as builder (so it needs `sandbox = false`, as check.sh sets).
#
# Nothing here compiles Rust. `rustPlatform.buildRustPackage` checks that it was called
# the way the real one must be (pname, version, src, cargoLock.lockFile equal to the
# source's Cargo.lock, meta.mainProgram, checkFlags as strings) and then copies a
# PREBUILT binary, ./prebuilt/<mainProgram>, which check.sh puts there from
# target/release. It is a test of the flake's wiring, never a build of the package.
{ lib, system }:
let
  inherit (builtins)
    all
    concatStringsSep
    isList
    isString
    pathExists
    readFile
    ;

  isLinux = builtins.elem system lib.platforms.linux;
  isDarwin = !isLinux;

  marker = "built by the OFFLINE STAND-IN for nixpkgs (installers/nix/stand-in), not by nixpkgs";

  # A derivation built by the host's /bin/sh running `script`.
  shDerivation =
    name: env: script:
    derivation (
      {
        inherit name system;
        builder = "/bin/sh";
        args = [
          "-c"
          ''
            set -e
            ${script}
          ''
        ];
        PATH = "/usr/bin:/bin";
        STANDIN = marker;
      }
      // env
    );

  # A placeholder for a tool package: has the right name and bin/<mainProgram>, which
  # only says that it is a stand-in.
  tool =
    name: attrs:
    let
      main = attrs.mainProgram or name;
      drv = shDerivation "${name}-stand-in" { inherit main; } ''
        mkdir -p "$out/bin"
        printf '#!/bin/sh\necho "%s: stand-in for nixpkgs.%s, not the real tool" >&2\nexit 127\n' \
          "$main" "$main" > "$out/bin/$main"
        chmod +x "$out/bin/$main"
      '';
    in
    drv
    // {
      pname = name;
      version = attrs.version or "0-stand-in";
      meta.mainProgram = main;
    };

  isDrv = x: builtins.isAttrs x && x ? type && x.type == "derivation";

  need = cond: msg: if cond then true else throw "stand-in buildRustPackage: ${msg}";

  buildRustPackage =
    args:
    let
      main = args.meta.mainProgram or null;
      prebuilt = ./prebuilt + "/${toString main}";
      customBuild = args ? buildPhase;
      checkFlags = args.checkFlags or [ ];
      srcLock = "${args.src}/Cargo.lock";
    in
    assert need (args ? pname && args ? version) "pname and version are required";
    assert need (args ? src) "src is required";
    assert need (args ? cargoLock && args.cargoLock ? lockFile)
      "cargoLock.lockFile is required (no cargoHash offline)";
    assert need (pathExists srcLock) "src has no Cargo.lock";
    assert need (readFile srcLock == readFile args.cargoLock.lockFile)
      "cargoLock.lockFile differs from src/Cargo.lock (cargoSetupHook would fail)";
    assert need (pathExists "${args.src}/Cargo.toml") "src has no Cargo.toml";
    assert need (isList checkFlags && all isString checkFlags) "checkFlags must be a list of strings";
    assert need (customBuild || isString main) "meta.mainProgram is required";
    let
      drv =
        shDerivation "${args.pname}-${args.version}"
          {
            inherit (args) src;
            cargoLockFile = args.cargoLock.lockFile;
            checkFlags = concatStringsSep " " checkFlags;
            buildPhaseText = args.buildPhase or "";
            mainProgram = if isString main then main else "";
            prebuilt = if !customBuild && pathExists prebuilt then prebuilt else "";
          }
          ''
            if [ -n "$buildPhaseText" ]; then
              # A check such as clippy: the stand-in has no cargo, so it records the
              # phase it would run instead of running it.
              mkdir -p "$out"
              printf '%s\n' "$STANDIN" > "$out/STAND-IN"
              printf '%s\n' "$buildPhaseText" > "$out/buildPhase.not-run"
            elif [ -n "$prebuilt" ]; then
              mkdir -p "$out/bin" "$out/share/stand-in"
              cp "$prebuilt" "$out/bin/$mainProgram"
              chmod 0555 "$out/bin/$mainProgram"
              printf '%s\nskipped tests: %s\n' "$STANDIN" "$checkFlags" > "$out/share/stand-in/STAND-IN"
            else
              echo "stand-in buildRustPackage: no prebuilt binary at installers/nix/stand-in/prebuilt/$mainProgram" >&2
              echo "(check.sh copies target/release/$mainProgram there in its temporary copy)" >&2
              exit 1
            fi
          '';
    in
    drv
    // {
      inherit (args) pname version src;
      inherit checkFlags;
      meta = args.meta or { };
    };

  mkShell =
    args:
    let
      inputs = (args.packages or [ ]) ++ (args.inputsFrom or [ ]) ++ (args.nativeBuildInputs or [ ]);
    in
    assert all isDrv inputs || throw "stand-in mkShell: every input must be a derivation";
    shDerivation (args.name or "nix-shell") { inputs = map toString inputs; } ''
      mkdir -p "$out"
      printf '%s\n%s\n' "$STANDIN" "$inputs" > "$out/STAND-IN"
    '';

  runCommand =
    name: env: script:
    let
      inputs = (env.nativeBuildInputs or [ ]) ++ (env.buildInputs or [ ]);
    in
    assert all isDrv inputs || throw "stand-in runCommand: every input must be a derivation";
    shDerivation name
      {
        inputs = map toString inputs;
        scriptText = script;
      }
      ''
        # The script would need the real tools: recorded, not run.
        mkdir -p "$out"
        printf '%s\n' "$STANDIN" > "$out/STAND-IN"
        printf '%s\n' "$scriptText" > "$out/script.not-run"
      '';
in
{
  inherit lib system;
  stdenv = {
    inherit isLinux isDarwin;
    hostPlatform = {
      inherit system isLinux isDarwin;
    };
  };
  rustPlatform = {
    inherit buildRustPackage;
  };
  inherit mkShell runCommand;

  # A version new enough for Cargo.toml's rust-version; the real one comes from nixpkgs.
  rustc = tool "rustc" { version = "1.91.0"; };
  cargo = tool "cargo" { version = "1.91.0"; };
  clippy = tool "clippy" { mainProgram = "cargo-clippy"; };
  rustfmt = tool "rustfmt" { };
  rust-analyzer = tool "rust-analyzer" { };
  curl = tool "curl" { };
  nodejs = tool "nodejs" { mainProgram = "node"; };
  python3 = tool "python3" { };
  nixfmt = tool "nixfmt" { };
  nixfmt-tree = tool "nixfmt-tree" { mainProgram = "treefmt"; };
}
