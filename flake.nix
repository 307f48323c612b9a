{
  description = "peerlab: Bitcoin honeynode observer stack with a record-and-replay testbed";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        peerlab = pkgs.callPackage ./nix/package.nix { };
        default = peerlab;
      });

      nixosModules = rec {
        peerlab = import ./nix/module.nix self;
        default = peerlab;
      };

      checks = forAllSystems (pkgs: {
        vm-basic = import ./vm-tests/basic.nix { inherit pkgs self; };
      });
    };
}
