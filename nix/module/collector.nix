# services.peerlab with role = "collector": the hub side of the fleet. Honeynodes connect to
# its nats-server (default.nix) as leafnodes; `peerlab-collector` keeps the stream
# PEERLAB_FLEET sourcing every node's PEERLAB_<node> (from JetStream domain <node>) and
# records it; one metrics tool per node serves that node's live events.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.peerlab;
  c = cfg.collector;
  units = import ./units.nix { inherit lib; };
  peerlab = "${cfg.package}/bin/peerlab";
  nats = units.natsArgs cfg.nats.port;
  natsUnit = [ "peerlab-nats.service" ];

  metricsPort = index: c.metricsBasePort + index;
  indexed = lib.imap0 (index: node: { inherit index node; }) c.nodes;

  peerlabUnits =
    {
      peerlab-collector = {
        description = "peerlab collector (records every honeynode's stream)";
        argv =
          [
            peerlab
            "fleet"
            "collect"
          ]
          ++ nats
          ++ [
            "--subject-prefix"
            cfg.subjectPrefix
          ]
          ++ lib.concatMap (node: [
            "--node"
            node
          ]) c.nodes
          ++ [
            "--output-dir"
            "/var/lib/peerlab-collector/recordings"
            "--rotate-mib"
            (toString c.recordings.rotateMiB)
            "--keep-mib"
            (toString c.recordings.keepMiB)
          ];
        after = natsUnit;
        wants = natsUnit;
        serviceConfig.StateDirectory = "peerlab-collector";
      };
    }
    // lib.listToAttrs (
      map (
        { index, node }:
        lib.nameValuePair "peerlab-tool-metrics-${node}" {
          description = "peerlab metrics of honeynode ${node}";
          argv =
            [
              peerlab
              "tools"
              "metrics"
            ]
            ++ nats
            ++ [
              "--subject-prefix"
              cfg.subjectPrefix
              "--node"
              node
              "-m"
              "127.0.0.1:${toString (metricsPort index)}"
            ];
          after = natsUnit;
          wants = natsUnit;
        }
      ) indexed
    );

  badNodes = lib.filter (node: !units.isToken node) c.nodes;
in
{
  config = lib.mkIf (cfg.enable && cfg.role == "collector") {
    assertions = [
      {
        assertion = c.nodes != [ ];
        message = "services.peerlab.collector.nodes is empty: a collector needs at least one honeynode name.";
      }
      {
        assertion = badNodes == [ ];
        message = "services.peerlab.collector.nodes: ${lib.concatMapStringsSep ", " (n: "`${n}`") badNodes} must be NATS tokens (letters, digits, `_` and `-` only).";
      }
      {
        assertion = lib.length (lib.unique c.nodes) == lib.length c.nodes;
        message = "services.peerlab.collector.nodes lists a node twice.";
      }
      {
        assertion = !(lib.elem "hub" c.nodes);
        message = "services.peerlab.collector.nodes must not contain `hub`: the collector's own JetStream domain is called that.";
      }
      {
        assertion = !(lib.elem cfg.nodeName c.nodes);
        message = "services.peerlab.nodeName (`${cfg.nodeName}`) of the collector must differ from every honeynode's: it is the hub's nats server_name.";
      }
      {
        assertion = c.recordings.keepMiB >= c.recordings.rotateMiB;
        message = "services.peerlab.collector.recordings.keepMiB must be at least rotateMiB (the newest file is never deleted).";
      }
      {
        assertion = metricsPort (lib.length c.nodes) - 1 <= 65535;
        message = "services.peerlab.collector.metricsBasePort + the number of nodes runs past port 65535.";
      }
    ];

    services.peerlab.internal.commands = lib.mapAttrs (_: u: u.argv) peerlabUnits;

    systemd.services = lib.mapAttrs (
      _: u: units.peerlabService (u // { logLevel = cfg.logLevel; })
    ) peerlabUnits;

    # Honeynodes reach the leafnode port over WireGuard only.
    networking.firewall.interfaces = lib.mkIf cfg.wireguard.enable {
      wg-peerlab.allowedTCPPorts = [ c.leafPort ];
    };

    services.prometheus = lib.mkIf c.prometheus.enable {
      enable = true;
      scrapeConfigs = [
        {
          job_name = "peerlab-metrics";
          scrape_interval = "15s";
          scrape_timeout = "14s";
          fallback_scrape_protocol = "PrometheusText0.0.4";
          static_configs = map (
            { index, node }:
            {
              targets = [ "127.0.0.1:${toString (metricsPort index)}" ];
              labels.host = node;
            }
          ) indexed;
        }
      ];
    };
  };
}
