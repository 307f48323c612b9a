# The fleet test's two machines (a module each), apart from the test script so that the
# evaluation tests can check them against the module's assertions without a VM.
{
  pkgs,
  self,
  honeynodeIp ? "10.21.0.1",
  collectorIp ? "10.21.1.1",
}:

let
  common = import ./common.nix { inherit pkgs self; };
in
{
  honeynode =
    { ... }:
    {
      imports = [
        (common.honeynode {
          nodeName = "node1";
          extraSecrets = [
            "leafPassword"
            "honeynodeWireguardKey"
          ];
        })
      ];
      services.peerlab = {
        collector = {
          host = collectorIp;
          leafPasswordFile = common.secrets.leafPassword.path;
        };
        wireguard = {
          enable = true;
          ips = [ "${honeynodeIp}/16" ];
          privateKeyFile = common.secrets.honeynodeWireguardKey.path;
          peers = [
            {
              publicKey = common.wireguardPublicKeys.collector;
              allowedIPs = [ "${collectorIp}/32" ];
              endpoint = "collector:51820";
              persistentKeepalive = 5;
            }
          ];
        };
        nginx.enable = true;
      };
      environment.systemPackages = [ pkgs.wireguard-tools ];
    };

  collector =
    { ... }:
    {
      imports = [
        self.nixosModules.peerlab
        (common.installSecrets [
          "leafPassword"
          "collectorWireguardKey"
        ])
      ];
      virtualisation.memorySize = 2048;
      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
        pkgs.wireguard-tools
      ];
      services.peerlab = {
        enable = true;
        role = "collector";
        nodeName = "collector";
        collector = {
          nodes = [ "node1" ];
          listenAddress = collectorIp;
          leafPasswordFile = common.secrets.leafPassword.path;
          recordings = {
            rotateMiB = 16;
            keepMiB = 256;
          };
        };
        nats.jetstream.maxFileStore = 1024 * 1024 * 1024;
        wireguard = {
          enable = true;
          ips = [ "${collectorIp}/16" ];
          privateKeyFile = common.secrets.collectorWireguardKey.path;
          peers = [
            {
              publicKey = common.wireguardPublicKeys.honeynode;
              allowedIPs = [ "${honeynodeIp}/32" ];
            }
          ];
        };
      };
    };

}
