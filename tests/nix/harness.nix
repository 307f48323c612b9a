# Evaluates the peerlab NixOS module without nixpkgs or a store: nixpkgs' lib alone
# (lib.evalModules), stub declarations for the NixOS options the module sets, and a stub
# `pkgs` whose packages are `/nix/store/stub-<name>` and whose writers return fake store
# paths. Nothing is built and no file is read but the Nix files themselves.
#
# nixpkgsLib: a nixpkgs `lib` directory (default: $PEERLAB_NIXPKGS_LIB, else
# ../shared/nixpkgs-lib/lib next to the repository).
{ nixpkgsLib ? null }:

let
  fromEnv = builtins.getEnv "PEERLAB_NIXPKGS_LIB";
  # A relative directory is taken from the current one.
  absolute =
    dir: if builtins.substring 0 1 dir == "/" then dir else builtins.getEnv "PWD" + "/" + dir;
  libPath =
    if nixpkgsLib != null then
      absolute (toString nixpkgsLib)
    else if fromEnv != "" then
      absolute fromEnv
    else
      ../../../shared/nixpkgs-lib/lib;
  lib = import libPath;
  inherit (lib) mkOption types;

  stub = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/stub-${name}";
  };

  pkgs = {
    stdenv.hostPlatform.system = "x86_64-linux";
    nats-server = stub "nats-server";
    coreutils = stub "coreutils";
    gzip = stub "gzip";
    findutils = stub "findutils";
    replace-secret = stub "replace-secret";
    curl = stub "curl";
    jq = stub "jq";
    wireguard-tools = stub "wireguard-tools";
    writeText = name: _text: "/nix/store/stub-text-${name}";
    writeShellScript = name: _text: "/nix/store/stub-script-${name}";
    callPackage = path: _: throw "stub pkgs: callPackage ${toString path} (set the package option)";
  };

  # The flake as the module sees it: only its packages.
  self.packages.x86_64-linux = {
    peerlab = stub "peerlab";
    bitcoind-traceable = stub "bitcoind-traceable";
  };

  anything = mkOption {
    type = types.anything;
    default = { };
  };
  ports = mkOption {
    type = types.listOf types.port;
    default = [ ];
  };

  # The NixOS options the module sets, declared loosely.
  nixosStubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      networking = {
        hostName = mkOption {
          type = types.str;
          default = "nixos";
        };
        firewall = {
          allowedTCPPorts = ports;
          allowedUDPPorts = ports;
          interfaces = mkOption {
            type = types.attrsOf (types.submodule {
              options.allowedTCPPorts = ports;
              options.allowedUDPPorts = ports;
            });
            default = { };
          };
        };
        wireguard.interfaces = mkOption {
          type = types.attrsOf types.anything;
          default = { };
        };
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.anything;
        default = [ ];
      };
      users = {
        users = mkOption {
          type = types.attrsOf types.anything;
          default = { };
        };
        groups = mkOption {
          type = types.attrsOf types.anything;
          default = { };
        };
      };
      systemd = {
        services = mkOption {
          type = types.attrsOf types.anything;
          default = { };
        };
        timers = mkOption {
          type = types.attrsOf types.anything;
          default = { };
        };
        tmpfiles.rules = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
      };
      virtualisation = anything;
      services.nginx = anything;
      services.prometheus = anything;
    };
  };

  module = import ../../nix/module.nix self;

  # Evaluates one configuration (a module: an attribute set or a function) and returns what
  # the tests read. Units are left out when an assertion fails (they may not evaluate then).
  evaluate =
    configuration:
    let
      evaluated = lib.evalModules {
        modules = [
          nixosStubs
          module
          configuration
          { _module.args.pkgs = pkgs; }
        ];
      };
      config = evaluated.config;
      failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
      unit = svc: {
        execStart = svc.serviceConfig.ExecStart or null;
        execStartPre = lib.toList (svc.serviceConfig.ExecStartPre or [ ]);
        execStartPost = lib.toList (svc.serviceConfig.ExecStartPost or [ ]);
        environment = svc.environment or { };
        loadCredential = lib.toList (svc.serviceConfig.LoadCredential or [ ]);
        after = svc.after or [ ];
        wants = svc.wants or [ ];
        requires = svc.requires or [ ];
        serviceConfig = svc.serviceConfig;
      };
      ok = failedAssertions == [ ];
    in
    {
      inherit failedAssertions;
      warnings = config.warnings;
      natsConfig = if ok then config.services.peerlab.generated.natsConfig else null;
      bitcoinConf = if ok then config.services.peerlab.generated.bitcoinConf else null;
      commands = if ok then config.services.peerlab.generated.commands else { };
      units = if ok then lib.mapAttrs (_: unit) config.systemd.services else { };
      timers = if ok then config.systemd.timers else { };
      tmpfiles = if ok then config.systemd.tmpfiles.rules else [ ];
      users = if ok then lib.attrNames config.users.users else [ ];
      groups = if ok then lib.attrNames config.users.groups else [ ];
      firewall = if ok then config.networking.firewall else { };
      wireguard = if ok then config.networking.wireguard.interfaces else { };
      nginx = if ok then config.services.nginx else { };
      prometheus = if ok then config.services.prometheus else { };
    };

  # What the VM tests' machine definitions need: the module comes from `evaluate` already.
  vmTestArgs = {
    inherit pkgs;
    self = self // {
      nixosModules.peerlab = { };
    };
  };
in
{
  inherit lib evaluate stub vmTestArgs;
}
