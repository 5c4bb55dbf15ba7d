{
  # NOT NIXPKGS. An offline stand-in with the few attributes /flake.nix uses, so the
  # flake's wiring can be checked where nixpkgs cannot be fetched:
  #   nix flake check --override-input nixpkgs path:./installers/nix/stand-in
  # Its packages are placeholders and its Rust "build" copies a prebuilt binary.
  # See installers/nix/README.md.
  description = "Offline stand-in for nixpkgs (wiring checks only)";

  outputs =
    { self }:
    let
      lib = import ./lib.nix;
      systems = lib.platforms.unix;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs systems (system: import ./pkgs.nix { inherit lib system; });
    };
}
