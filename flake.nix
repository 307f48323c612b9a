{
  description = "peerlab: Bitcoin honeynode observer stack with a record-and-replay testbed";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        peerlab = pkgs.callPackage ./nix/package.nix { };
        # Bitcoin Core with USDT tracepoints and IPC (`libexec/bitcoin-node`).
        bitcoind-traceable = pkgs.callPackage ./nix/bitcoind.nix { };
        default = peerlab;
      });

      # services.peerlab: a honeynode or the fleet's collector.
      nixosModules = rec {
        peerlab = import ./nix/module.nix self;
        default = peerlab;
      };

      checks = forAllSystems (pkgs: {
        # One regtest honeynode with every extractor, tool and the recorder.
        vm-basic = import ./vm-tests/basic.nix { inherit pkgs self; };
        # A honeynode and the collector over WireGuard, including a link outage.
        vm-fleet = import ./vm-tests/fleet.nix { inherit pkgs self; };
      });
    };
}
