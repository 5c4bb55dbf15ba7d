{
  description = "clerk-mcp-server: a stdio-to-HTTP bridge for remote MCP servers, with OAuth sign-in";

  # nixos-unstable: Cargo.toml asks for rust-version 1.89 and edition 2024.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});

      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);

      # Only what cargo reads: edits to the README, interop/, CI or installers do not
      # rebuild the package.
      src = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./Cargo.toml
          ./Cargo.lock
          ./src
          ./tests
          (lib.fileset.maybeMissing ./build.rs)
        ];
      };

      # The integration tests (tests/it) run the real binary against mock servers on
      # 127.0.0.1, which the build sandbox allows (its network namespace has loopback).
      # Tests that cannot run in the Nix build sandbox. None today: the tests only use
      # loopback sockets, and the sign-in tests' stand-in browser is curl, a check input
      # below, named by absolute path.
      sandboxSkips = [ ];

      mkPackage =
        pkgs:
        assert lib.assertMsg (lib.versionAtLeast pkgs.rustc.version cargoToml.package.rust-version)
          "clerk-mcp-server needs rustc >= ${cargoToml.package.rust-version}; this nixpkgs has ${pkgs.rustc.version}";
        pkgs.rustPlatform.buildRustPackage {
          pname = cargoToml.package.name;
          inherit (cargoToml.package) version;
          inherit src;

          cargoLock.lockFile = ./Cargo.lock;

          # checkPhase is `cargo test` (release profile, as built); on macOS the tests
          # need the sandbox to allow loopback sockets.
          __darwinAllowLocalNetworking = true;
          checkFlags = map (test: "--skip=${test}") sandboxSkips;
          nativeCheckInputs = [ pkgs.curl ];

          meta = {
            inherit (cargoToml.package) description;
            homepage = cargoToml.package.repository;
            license = lib.licenses.mit;
            mainProgram = "clerk-mcp-server";
            platforms = lib.platforms.unix;
          };
        };
    in
    {
      packages = forAllSystems (
        system: pkgs: rec {
          clerk-mcp-server = mkPackage pkgs;
          default = clerk-mcp-server;
        }
      );

      apps = forAllSystems (
        system: pkgs: {
          default = {
            type = "app";
            program = lib.getExe self.packages.${system}.default;
            meta.description = cargoToml.package.description;
          };
        }
      );

      devShells = forAllSystems (
        system: pkgs: {
          default = pkgs.mkShell {
            packages = [
              pkgs.cargo
              pkgs.rustc
              pkgs.clippy
              pkgs.rustfmt
              pkgs.rust-analyzer
              # the tests' stand-in browser (tests/it/support/oauth.rs)
              pkgs.curl
              # interop/node and interop/python
              pkgs.nodejs
              pkgs.python3
              pkgs.nixfmt
            ];
          };
        }
      );

      checks = forAllSystems (
        system: pkgs:
        let
          package = self.packages.${system}.default;
        in
        {
          # Builds the package and runs its tests (all but sandboxSkips).
          inherit package;

          clippy = pkgs.rustPlatform.buildRustPackage {
            pname = "${package.pname}-clippy";
            inherit (package) version src;
            cargoLock.lockFile = ./Cargo.lock;
            nativeBuildInputs = [ pkgs.clippy ];
            auditable = false;
            buildPhase = ''
              runHook preBuild
              cargo clippy --frozen --all-targets -- -D warnings
              runHook postBuild
            '';
            doCheck = false;
            installPhase = ''
              mkdir -p $out
            '';
          };

          rustfmt =
            pkgs.runCommand "${package.pname}-rustfmt"
              {
                nativeBuildInputs = [
                  pkgs.cargo
                  pkgs.rustfmt
                ];
              }
              ''
                cd ${src}
                cargo fmt --all -- --check
                touch $out
              '';
        }
      );

      # `nix fmt`: formats the repository's Nix files with nixfmt.
      formatter = forAllSystems (system: pkgs: pkgs.nixfmt-tree);
    };
}
