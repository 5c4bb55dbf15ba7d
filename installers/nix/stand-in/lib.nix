# OFFLINE STAND-IN for the part of nixpkgs' `lib` that /flake.nix uses.
#
# Same names and the same meaning for the arguments flake.nix passes, written with
# builtins only, so that flake.nix can be evaluated without fetching nixpkgs. It is not
# nixpkgs' code and covers nothing beyond what flake.nix calls: a new `lib.foo` in
# flake.nix fails here with "attribute 'foo' missing", and then needs a line here too.
let
  inherit (builtins)
    all
    any
    compareVersions
    listToAttrs
    pathExists
    stringLength
    substring
    ;

  hasPrefix = pre: s: substring 0 (stringLength pre) s == pre;

  # lib.fileset: only `unions`, `maybeMissing` and `toSource` over plain paths.
  # A "fileset" here is a list of absolute path strings (files or directories).
  fileset = rec {
    maybeMissing = p: {
      _type = "stand-in-fileset";
      paths = if pathExists p then [ (toString p) ] else [ ];
    };
    coerce =
      x:
      if builtins.isAttrs x && x ? _type then
        x.paths
      else if pathExists x then
        [ (toString x) ]
      else
        # The real lib.fileset also refuses a path that does not exist.
        throw "lib.fileset (stand-in): ${toString x} does not exist; use lib.fileset.maybeMissing";
    unions = xs: {
      _type = "stand-in-fileset";
      paths = builtins.concatMap coerce xs;
    };
    toSource =
      { root, fileset }:
      let
        paths = coerce fileset;
        wanted =
          p: type:
          any (
            f:
            p == f
            || hasPrefix (f + "/") p
            # a directory on the way down to a wanted path
            || (type == "directory" && hasPrefix (p + "/") f)
          ) paths;
      in
      assert all (f: hasPrefix (toString root + "/") f) paths;
      builtins.path {
        name = "source";
        path = root;
        filter = wanted;
      };
  };
in
{
  inherit fileset hasPrefix;

  genAttrs =
    names: f:
    listToAttrs (
      map (n: {
        name = n;
        value = f n;
      }) names
    );

  optionals = cond: xs: if cond then xs else [ ];

  versionAtLeast = v: min: compareVersions v min >= 0;

  assertMsg = pred: msg: pred || throw msg;

  # lib.getExe: the store path of the package's meta.mainProgram.
  getExe =
    drv:
    if drv ? meta && drv.meta ? mainProgram then
      "${drv}/bin/${drv.meta.mainProgram}"
    else
      throw "lib.getExe (stand-in): ${drv.name} has no meta.mainProgram";

  licenses.mit = {
    spdxId = "MIT";
    shortName = "mit";
    fullName = "MIT License";
    free = true;
  };

  platforms = rec {
    linux = [
      "x86_64-linux"
      "aarch64-linux"
    ];
    darwin = [
      "x86_64-darwin"
      "aarch64-darwin"
    ];
    unix = linux ++ darwin;
    all = unix;
  };
}
