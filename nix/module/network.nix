# services.peerlab's network parts: the WireGuard interface between honeynodes and the
# collector, nginx on the WireGuard address (honeynode), the Prometheus exporters.
{ config, lib, ... }:

let
  cfg = config.services.peerlab;
  wg = cfg.wireguard;
  honeynode = cfg.role == "honeynode";
  stripPrefix = ip: lib.head (lib.splitString "/" ip);
  nginxAddress =
    if cfg.nginx.listenAddress != null then
      cfg.nginx.listenAddress
    else
      stripPrefix (lib.head wg.ips);
  proxy = address: {
    proxyPass = "http://${address}/";
  };
in
{
  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      (lib.mkIf wg.enable {
        networking.wireguard.interfaces.wg-peerlab = {
          inherit (wg) ips peers;
          privateKeyFile = wg.privateKeyFile;
        }
        // lib.optionalAttrs (wg.listenPort != null) { listenPort = wg.listenPort; };
        networking.firewall.allowedUDPPorts = lib.optional (wg.listenPort != null) wg.listenPort;
      })

      (lib.mkIf (honeynode && cfg.nginx.enable) {
        services.nginx = {
          enable = true;
          recommendedProxySettings = true;
          virtualHosts.peerlab-node = {
            listen = [
              {
                addr = nginxAddress;
                port = cfg.nginx.port;
              }
            ];
            locations =
              lib.optionalAttrs cfg.tools.metrics.enable {
                "/peerlab-metrics/" = proxy cfg.tools.metrics.address;
              }
              // lib.optionalAttrs cfg.tools.websocket.enable {
                "/peerlab-websocket/" = proxy cfg.tools.websocket.address // {
                  proxyWebsockets = true;
                };
              }
              // lib.optionalAttrs cfg.exporters.node.enable {
                "/prometheus-exporter-node/" = proxy "127.0.0.1:9100";
              }
              // lib.optionalAttrs cfg.exporters.process.enable {
                "/prometheus-exporter-process/" = proxy "127.0.0.1:9256";
              };
          };
        };
        networking.firewall.interfaces.wg-peerlab.allowedTCPPorts = [ cfg.nginx.port ];
      })

      {
        services.prometheus.exporters.node = lib.mkIf cfg.exporters.node.enable {
          enable = true;
          listenAddress = "127.0.0.1";
          port = 9100;
        };
        services.prometheus.exporters.process = lib.mkIf cfg.exporters.process.enable {
          enable = true;
          listenAddress = "127.0.0.1";
          port = 9256;
          settings.process_names = [
            {
              name = "{{.Comm}}";
              cmdline = [ ".+" ];
            }
          ];
        };
      }
    ]
  );
}
