# A fleet's plan: what the module generates for N honeynodes and their collector, as JSON,
# for a test that runs these command lines in network namespaces (store-path stubs
# `/nix/store/stub-<package>` replaced by local binaries; `%d` is the unit's credentials
# directory).
#
#   nix-instantiate --eval --strict --json tests/nix/fleet-plan.nix \
#     --argstr nodes node1,node2 --argstr collectorHost 10.21.1.1
#
# Every parameter is a string (--argstr); the leaf password stays the `@LEAF_PASSWORD@`
# placeholder in natsConfig, and the secret files below are paths only, never read.
# Fails with the module's assertion messages when a configuration is refused.
{
  nixpkgsLib ? null,
  nodes ? "node1,node2",
  collectorName ? "collector",
  collectorHost ? "10.21.1.1",
  leafPort ? "7422",
  natsPort ? "4222",
  monitorPort ? "8222",
  metricsBasePort ? "9200",
  prefix ? "peerlab",
  chain ? "regtest",
  leafPasswordFile ? "/run/peerlab-test/leaf-password",
  rpcPasswordFile ? "/run/peerlab-test/rpc-password",
  # Public test value: the `salt$hmac` of the rpc-extractor user.
  rpcPasswordHMAC ? "0f1e2d3c4b5a69788796a5b4c3d2e1f0$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
}:

let
  harness = import ./harness.nix { inherit nixpkgsLib; };
  inherit (harness) lib evaluate;
  nodeNames = lib.filter (n: n != "") (lib.splitString "," nodes);

  shared = {
    subjectPrefix = prefix;
    nats = {
      port = lib.toInt natsPort;
      monitorPort = lib.toInt monitorPort;
    };
    collector = {
      leafPort = lib.toInt leafPort;
      inherit leafPasswordFile;
    };
  };

  honeynode = name: {
    networking.hostName = name;
    services.peerlab = lib.recursiveUpdate shared {
      enable = true;
      role = "honeynode";
      bitcoind.chain = chain;
      bitcoind.rpcUsers.rpc-extractor.passwordHMAC = rpcPasswordHMAC;
      extractors.rpc.passwordFile = rpcPasswordFile;
      collector.host = collectorHost;
    };
  };

  collector = {
    networking.hostName = collectorName;
    services.peerlab = lib.recursiveUpdate shared {
      enable = true;
      role = "collector";
      collector = {
        nodes = nodeNames;
        listenAddress = collectorHost;
        metricsBasePort = lib.toInt metricsBasePort;
      };
    };
  };

  plan =
    what: configuration:
    let
      result = evaluate configuration;
      unit = name: u: {
        inherit (u)
          execStart
          execStartPre
          execStartPost
          environment
          loadCredential
          after
          ;
        # ExecStart as an argv (peerlab-* units; null for a unit without one).
        argv = result.commands.${name} or null;
      };
    in
    if result.failedAssertions != [ ] then
      throw "fleet plan, ${what}: ${lib.concatStringsSep "; " result.failedAssertions}"
    else
      {
        inherit (result) natsConfig bitcoinConf;
        # The stub store paths of the generated files, with their contents.
        files = {
          "/nix/store/stub-text-peerlab-nats.json" = result.natsConfig;
        }
        // lib.optionalAttrs (result.bitcoinConf != null) {
          "/nix/store/stub-text-peerlab-bitcoin.conf" = result.bitcoinConf;
        };
        units = lib.mapAttrs unit result.units;
      };
in
{
  honeynodes = lib.genAttrs nodeNames (name: plan "honeynode ${name}" (honeynode name));
  collector = plan "collector" collector;
}
