# Evaluates services.peerlab for named scenarios (or one given configuration) and prints,
# per scenario: failing assertion messages, the generated nats-server config and
# bitcoin.conf, each peerlab unit's argv, and every unit's Exec lines and serviceConfig.
#
#   nix-instantiate --eval --strict --json tests/nix/eval.nix --argstr scenario all
#   nix-instantiate --eval --strict --json tests/nix/eval.nix --argstr scenario collector
#   nix-instantiate --eval --strict --json tests/nix/eval.nix \
#     --argstr configJSON '{"services":{"peerlab":{"enable":true, ...}}}'
#
# --argstr nixpkgsLib DIR (or $PEERLAB_NIXPKGS_LIB) picks nixpkgs' lib. Nix 2.8 calls this
# file's function only when at least one argument is given on the command line.
{
  nixpkgsLib ? null,
  scenario ? "all",
  configJSON ? null,
}:

let
  harness = import ./harness.nix { inherit nixpkgsLib; };
  inherit (harness) lib evaluate;
  vmCommon = import ../../vm-tests/common.nix harness.vmTestArgs;
  vmFleet = import ../../vm-tests/fleet-nodes.nix harness.vmTestArgs;

  # Test-only values: paths of secret files (never read) and a public rpcauth hash.
  secrets = {
    services.peerlab.extractors.rpc.passwordFile = "/run/agenix/peerlab-rpc-password";
    services.peerlab.bitcoind.rpcUsers.rpc-extractor.passwordHMAC = "0f1e2d3c4b5a69788796a5b4c3d2e1f0$" + lib.strings.replicate 64 "a";
  };

  honeynode =
    extra:
    lib.recursiveUpdate (lib.recursiveUpdate secrets {
      networking.hostName = "node1";
      services.peerlab = {
        enable = true;
        role = "honeynode";
      };
    }) extra;

  scenarios = {
    # The VM tests' machines, which must pass the module's assertions.
    vm-basic = vmCommon.honeynode { nodeName = "node1"; };
    vm-fleet-honeynode = vmFleet.honeynode;
    vm-fleet-collector = vmFleet.collector;

    honeynode = honeynode { };
    honeynode-regtest = honeynode { services.peerlab.bitcoind.chain = "regtest"; };
    honeynode-signet-unpruned = honeynode {
      services.peerlab.bitcoind = {
        chain = "signet";
        prune = 0;
      };
    };
    honeynode-no-ipc = honeynode { services.peerlab.extractors.ipc.enable = false; };
    honeynode-linked = honeynode {
      services.peerlab = {
        bitcoind.chain = "testnet4";
        collector = {
          host = "10.21.1.1";
          leafPasswordFile = "/run/agenix/peerlab-leaf-password";
        };
        wireguard = {
          enable = true;
          ips = [ "10.21.0.1/16" ];
          privateKeyFile = "/run/agenix/peerlab-wireguard-key";
          peers = [
            {
              publicKey = "collector-public-key";
              allowedIPs = [ "10.21.1.1/32" ];
              endpoint = "collector.example:51820";
              persistentKeepalive = 25;
            }
          ];
        };
        nginx.enable = true;
      };
    };
    collector = {
      networking.hostName = "collector";
      services.peerlab = {
        enable = true;
        role = "collector";
        collector = {
          nodes = [
            "node1"
            "node2"
          ];
          listenAddress = "10.21.1.1";
          leafPasswordFile = "/run/agenix/peerlab-leaf-password";
          prometheus.enable = true;
        };
        wireguard = {
          enable = true;
          ips = [ "10.21.1.1/16" ];
          privateKeyFile = "/run/agenix/peerlab-wireguard-key";
        };
      };
    };
  };
in
if configJSON != null then
  evaluate (builtins.fromJSON configJSON)
else if scenario == "all" then
  lib.mapAttrs (_: evaluate) scenarios
else
  evaluate scenarios.${scenario}
