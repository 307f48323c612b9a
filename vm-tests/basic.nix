# NixOS VM test: the module brings up nats-server and the logger, and the logger connects.
{ pkgs, self }:

pkgs.testers.runNixOSTest {
  name = "peerlab-basic";
  nodes.machine = { ... }: {
    imports = [ self.nixosModules.peerlab ];
    services.peerlab = {
      enable = true;
      logger.enable = true;
    };
  };
  testScript = ''
    machine.wait_for_unit("nats.service")
    machine.wait_for_unit("peerlab-logger.service")
    machine.wait_for_open_port(4222)
    machine.succeed("peerlab --help")
  '';
}
