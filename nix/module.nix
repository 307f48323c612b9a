# NixOS module: a honeynode's observer pipeline (nats-server + peerlab extractors and tools).
self:
{ config, lib, pkgs, ... }:

let
  cfg = config.services.peerlab;
  natsUrl = "nats://127.0.0.1:${toString cfg.nats.port}";
in
{
  options.services.peerlab = {
    enable = lib.mkEnableOption "the peerlab observer pipeline";

    package = lib.mkOption {
      type = lib.types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.peerlab;
      description = "The peerlab package.";
    };

    nats = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Run a local nats-server for the pipeline.";
      };
      port = lib.mkOption {
        type = lib.types.port;
        default = 4222;
        description = "Port of the local nats-server.";
      };
    };

    logger.enable = lib.mkEnableOption "the event logger tool (journal output)";
  };

  config = lib.mkIf cfg.enable {
    environment.systemPackages = [ cfg.package ];

    services.nats = lib.mkIf cfg.nats.enable {
      enable = true;
      port = cfg.nats.port;
      # Whole blocks travel in one event.
      settings.max_payload = 8388608;
    };

    systemd.services.peerlab-logger = lib.mkIf cfg.logger.enable {
      description = "peerlab event logger";
      after = [ "nats.service" ];
      wantedBy = [ "multi-user.target" ];
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/peerlab tools logger -a ${natsUrl}";
        Restart = "always";
        DynamicUser = true;
      };
    };
  };
}
