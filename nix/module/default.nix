# services.peerlab: the options, the parts both roles share (nats-server, assertions, the
# generated files), and the role files. See the README's "Deploy" section.
self:
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption types literalExpression;
  cfg = config.services.peerlab;
  units = import ./units.nix { inherit lib; };
  bitcoindConf = import ./bitcoind-conf.nix { inherit lib; };
  natsConf = import ./nats-conf.nix { inherit lib; };
  system = pkgs.stdenv.hostPlatform.system;
  flakePackage =
    name: fallback: if self != null then self.packages.${system}.${name} else fallback;

  honeynode = cfg.role == "honeynode";
  chain = bitcoindConf.chains.${cfg.bitcoind.chain};
  runtimeDir = "/run/peerlab-bitcoind";

  extraArgsOption =
    what:
    mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--stats-interval" "30" ];
      description = "Extra arguments for ${what}, appended to its command line (one element per argument; a literal `%` is written `%%`).";
    };

  # A path to a secret, read only by systemd (LoadCredential) when the unit starts.
  secretFileOption =
    what:
    mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/agenix/peerlab-${what}";
      description = ''
        Path of a file holding the ${what}, e.g. an agenix secret. Only the path goes into the
        Nix store: systemd reads the file at unit start and hands it to the unit as a
        credential (`LoadCredential`). Give a string, not a Nix path literal (which would copy
        the secret into the store).
      '';
    };

  rpcUserModule = {
    options = {
      passwordHMAC = mkOption {
        type = types.nullOr (types.strMatching "[0-9a-f]+\\$[0-9a-f]{64}");
        default = null;
        example = "f7efda5c189b999524f151318c0c86$d5b51b3beffbc02b724e5d095828e0bc8b2456e9ac8757ae3211a5d9b16a22ae";
        description = ''
          The `salt$hmac` part of this user's `rpcauth=` line (Bitcoin Core's
          `share/rpcauth/rpcauth.py <user>` prints it). Public: only the hash is stored. A user
          without it is left out of bitcoin.conf.
        '';
      };
      rpcwhitelist = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [ "getblockchaininfo" ];
        description = "The RPCs this user may call (`rpcwhitelist=`); null: every RPC (`rpcwhitelistdefault=0`).";
      };
    };
  };

  natsCommon = {
    serverName = cfg.nodeName;
    port = cfg.nats.port;
    monitorPort = cfg.nats.monitorPort;
    maxPayload = cfg.nats.maxPayload;
    storeDir = "/var/lib/peerlab-nats/jetstream";
    maxFileStore = cfg.nats.jetstream.maxFileStore;
  };
  natsSettings =
    if honeynode then
      natsConf.honeynode (
        natsCommon
        // {
          node = cfg.nodeName;
          prefix = cfg.subjectPrefix;
          leafRemote =
            if cfg.collector.host == null then
              null
            else
              {
                user = cfg.collector.leafUser;
                host = cfg.collector.host;
                port = cfg.collector.leafPort;
              };
        }
      )
    else
      natsConf.collector (
        natsCommon
        // {
          leafListen = "${natsConf.urlHost cfg.collector.listenAddress}:${toString cfg.collector.leafPort}";
          leafUser = cfg.collector.leafUser;
        }
      );
  natsConfigText = builtins.toJSON natsSettings;
  natsNeedsSecret = !honeynode || cfg.collector.host != null;
  natsStoreConfig = pkgs.writeText "peerlab-nats.json" natsConfigText;
  natsRuntimeConfig = "/run/peerlab-nats/nats.json";
  natsArgv = [
    "${cfg.nats.package}/bin/nats-server"
    "-c"
    (if natsNeedsSecret then natsRuntimeConfig else "${natsStoreConfig}")
  ];

  bitcoinConfText = bitcoindConf.render {
    inherit (cfg.bitcoind) chain prune debugCategories rpcUsers extraConfig;
    port = cfg.bitcoind.port;
    rpcPort = cfg.bitcoind.rpcPort;
    pidFile = "${runtimeDir}/bitcoind.pid";
    addnode = lib.optional cfg.extractors.p2p.enable cfg.extractors.p2p.address;
    ipcSocket = if cfg.extractors.ipc.enable then "${runtimeDir}/node.sock" else null;
  };

  wireguardUnit = lib.optional cfg.wireguard.enable "wireguard-wg-peerlab.service";

  secretFiles = lib.filter (f: f.path != null) [
    {
      option = "services.peerlab.collector.leafPasswordFile";
      path = cfg.collector.leafPasswordFile;
    }
    {
      option = "services.peerlab.extractors.rpc.passwordFile";
      path = cfg.extractors.rpc.passwordFile;
    }
    {
      option = "services.peerlab.wireguard.privateKeyFile";
      path = cfg.wireguard.privateKeyFile;
    }
  ];
in
{
  imports = [
    ./honeynode.nix
    ./collector.nix
    ./network.nix
  ];

  options.services.peerlab = {
    enable = mkEnableOption "peerlab, a Bitcoin honeynode observer stack (a honeynode, or the fleet's collector)";

    role = mkOption {
      type = types.enum [
        "honeynode"
        "collector"
      ];
      default = "honeynode";
      description = ''
        `honeynode`: a traceable bitcoind watched by every extractor, a local nats-server
        (with the node's JetStream stream and, when `collector.host` is set, a leafnode link to
        the collector), the tools and a recorder. `collector`: the hub nats-server the
        honeynodes connect to, a recorder of every node's stream, a metrics endpoint per node.
      '';
    };

    package = mkOption {
      type = types.package;
      default = flakePackage "peerlab" (pkgs.callPackage ../package.nix { });
      defaultText = literalExpression "peerlab.packages.\${system}.peerlab";
      description = "The peerlab package.";
    };

    nodeName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      example = "node1";
      description = ''
        This machine's name in the fleet: the JetStream domain and stream (`PEERLAB_<name>`) of
        a honeynode, the token in its fleet subjects (`<subjectPrefix>.<name>.<subject>`), the
        nats-server's `server_name`. Letters, digits, `_` and `-` only (a NATS token).
      '';
    };

    subjectPrefix = mkOption {
      type = types.str;
      default = "peerlab";
      description = "First token(s) of the fleet subjects (`<prefix>.<node>.<subject>`), the same on every machine of a fleet.";
    };

    logLevel = mkOption {
      type = types.str;
      default = "info,async_nats=warn";
      description = "Log filter of every peerlab unit (`PEERLAB_LOG`, tracing syntax).";
    };

    nats = {
      package = mkOption {
        type = types.package;
        default = pkgs.nats-server;
        defaultText = literalExpression "pkgs.nats-server";
        description = "The nats-server package (2.9 or later).";
      };
      port = mkOption {
        type = types.port;
        default = 4222;
        description = "Client port of the local nats-server (bound to 127.0.0.1).";
      };
      monitorPort = mkOption {
        type = types.port;
        default = 8222;
        description = "HTTP monitoring port of the local nats-server (127.0.0.1), what `peerlab status --monitor` reads.";
      };
      maxPayload = mkOption {
        type = types.ints.positive;
        default = 15 * 1024 * 1024;
        description = "Largest message in bytes (whole blocks travel as one event).";
      };
      jetstream.maxFileStore = mkOption {
        type = types.ints.positive;
        default = 16 * 1024 * 1024 * 1024;
        description = "Disk JetStream may use, in bytes (`max_file_store`); the node stream's budget must fit.";
      };
    };

    bitcoind = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Run the honeynode's bitcoind (`peerlab-bitcoind`); the extractors watch it.";
      };
      package = mkOption {
        type = types.package;
        default = flakePackage "bitcoind-traceable" (pkgs.callPackage ../bitcoind.nix { });
        defaultText = literalExpression "peerlab.packages.\${system}.bitcoind-traceable";
        description = "Bitcoin Core built with USDT tracepoints (and IPC, for the IPC extractor).";
      };
      executable = mkOption {
        type = types.str;
        default =
          if cfg.extractors.ipc.enable then
            "${cfg.bitcoind.package}/libexec/bitcoin-node"
          else
            "${cfg.bitcoind.package}/bin/bitcoind";
        defaultText = literalExpression ''
          if extractors.ipc.enable then "''${package}/libexec/bitcoin-node"
          else "''${package}/bin/bitcoind"'';
        description = "The node binary run (and traced by the eBPF extractor); `bitcoin-node` is the same node with Cap'n Proto IPC.";
      };
      chain = mkOption {
        type = types.enum (lib.attrNames bitcoindConf.chains);
        default = "main";
        description = "The chain (`chain=`).";
      };
      prune = mkOption {
        type = types.ints.unsigned;
        default = 4000;
        description = "Block storage to keep, in MiB (`prune=`): 0 keeps every block, otherwise at least 550.";
      };
      port = mkOption {
        type = types.port;
        default = chain.p2pPort;
        defaultText = "the chain's default P2P port (8333, 18333, 48333, 38333, 18444)";
        description = "P2P port.";
      };
      rpcPort = mkOption {
        type = types.port;
        default = chain.rpcPort;
        defaultText = "the chain's default RPC port (8332, 18332, 48332, 38332, 18443)";
        description = "RPC port (bound to 127.0.0.1).";
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = "Open the P2P port (inbound peers are what a honeynode observes).";
      };
      dataDir = mkOption {
        type = types.str;
        default = "/var/lib/peerlab-bitcoind";
        description = "bitcoind's data directory.";
      };
      debugCategories = mkOption {
        type = types.listOf types.str;
        default = bitcoindConf.defaultDebugCategories;
        description = "`debug=` categories logged to debug.log (what the log extractor publishes).";
      };
      rpcUsers = mkOption {
        type = types.attrsOf (types.submodule rpcUserModule);
        default = { };
        example = literalExpression ''
          { rpc-extractor.passwordHMAC = "<salt>$<hmac>"; }
        '';
        description = ''
          RPC users, each an `rpcauth=` line plus `rpcwhitelist=` when it has a list. The
          `rpc-extractor` user's list defaults to exactly the RPCs the RPC extractor calls.
        '';
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
        description = "Appended to bitcoin.conf (inside the chain's section).";
      };
      logRotation = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Rotate debug.log (rename, SIGHUP, append to a per-day gzip next to it).";
        };
        schedule = mkOption {
          type = types.str;
          default = "hourly";
          description = "When to rotate (systemd `OnCalendar=`).";
        };
        keepDays = mkOption {
          type = types.ints.positive;
          default = 4;
          description = "Days of compressed debug logs kept.";
        };
      };
    };

    extractors = {
      spoolMaxBytes = mkOption {
        type = types.ints.positive;
        default = 1024 * 1024 * 1024;
        description = "Per extractor: bytes of events spooled to disk while NATS is away (`--spool-max-bytes`).";
      };
      ebpf = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "The eBPF extractor (`peerlab-extractor-ebpf`): bitcoind's USDT tracepoints.";
        };
        extraArgs = extraArgsOption "the eBPF extractor";
      };
      rpc = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "The RPC extractor (`peerlab-extractor-rpc`).";
        };
        user = mkOption {
          type = types.str;
          default = "rpc-extractor";
          description = "The RPC user it logs in as (whitelisted for its RPCs).";
        };
        passwordFile = secretFileOption "RPC extractor's password";
        extraArgs = extraArgsOption "the RPC extractor";
      };
      p2p = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "The P2P extractor (`peerlab-extractor-p2p`), a peer bitcoind dials (`addnode`).";
        };
        address = mkOption {
          type = types.str;
          default = "127.0.0.1:28213";
          description = "Where the P2P extractor listens.";
        };
        extraArgs = extraArgsOption "the P2P extractor";
      };
      log = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "The log extractor (`peerlab-extractor-log`), following debug.log.";
        };
        extraArgs = extraArgsOption "the log extractor";
      };
      ipc = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "The IPC extractor (`peerlab-extractor-ipc`); runs bitcoind as `bitcoin-node` with `ipcbind`.";
        };
        extraArgs = extraArgsOption "the IPC extractor";
      };
    };

    tools = {
      metrics = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "The metrics tool (`peerlab-tool-metrics`), a Prometheus endpoint.";
        };
        address = mkOption {
          type = types.str;
          default = "127.0.0.1:8282";
          description = "Where it serves.";
        };
        extraArgs = extraArgsOption "the metrics tool";
      };
      websocket = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "The websocket tool and live pages (`peerlab-tool-websocket`).";
        };
        address = mkOption {
          type = types.str;
          default = "127.0.0.1:8284";
          description = "Where it serves.";
        };
        extraArgs = extraArgsOption "the websocket tool";
      };
      alerts = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "The alerts tool (`peerlab-tool-alerts`).";
        };
        extraArgs = extraArgsOption "the alerts tool";
      };
    };

    recorder = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Record every local event (`peerlab-recorder`) into /var/lib/peerlab/recordings.";
      };
      rotateMiB = mkOption {
        type = types.ints.positive;
        default = 256;
        description = "Start a new recording file after this many MiB (`--rotate-mib`).";
      };
      keepMiB = mkOption {
        type = types.ints.positive;
        default = 20480;
        description = "Delete the oldest recordings while they total more than this many MiB, never the newest (`--keep-mib`).";
      };
      extraArgs = extraArgsOption "the recorder";
    };

    nodeStream = {
      maxBytes = mkOption {
        type = types.ints.positive;
        default = 8 * 1024 * 1024 * 1024;
        description = "Budget in bytes of the node's JetStream stream, what a link outage can buffer (`--max-bytes`).";
      };
      maxAgeSecs = mkOption {
        type = types.ints.positive;
        default = 7 * 24 * 3600;
        description = "Oldest event the node's stream keeps, in seconds (`--max-age-secs`).";
      };
    };

    collector = {
      host = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "10.21.1.1";
        description = "Honeynode: the collector's address (its WireGuard IP) to connect the leafnode link to; null: no link.";
      };
      leafPort = mkOption {
        type = types.port;
        default = 7422;
        description = "The collector's leafnode port.";
      };
      leafUser = mkOption {
        type = types.str;
        default = "leaf";
        description = "The user honeynodes' leafnode links log in as.";
      };
      leafPasswordFile = secretFileOption "leafnode link password (URL-safe, e.g. `openssl rand -hex 32`; the same on the collector and every honeynode)";
      listenAddress = mkOption {
        type = types.str;
        default = "0.0.0.0";
        example = "10.21.1.1";
        description = "Collector: the address the leafnode listener binds (its WireGuard IP).";
      };
      nodes = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "node1"
          "node2"
        ];
        description = "Collector: the honeynodes' `nodeName`s, each recorded and given a metrics endpoint.";
      };
      recordings = {
        rotateMiB = mkOption {
          type = types.ints.positive;
          default = 256;
          description = "Collector: start a new recording file after this many MiB.";
        };
        keepMiB = mkOption {
          type = types.ints.positive;
          default = 102400;
          description = "Collector: delete the oldest recordings while they total more than this many MiB.";
        };
      };
      metricsBasePort = mkOption {
        type = types.port;
        default = 9200;
        description = "Collector: node i (0-based, in `nodes` order) gets its metrics on 127.0.0.1:(base + i).";
      };
      prometheus.enable = mkOption {
        type = types.bool;
        default = false;
        description = "Collector: run Prometheus scraping every node's metrics endpoint (label `host=<node>`).";
      };
    };

    wireguard = {
      enable = mkEnableOption "the WireGuard interface `wg-peerlab` between honeynodes and the collector";
      ips = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "10.21.0.1/16" ];
        description = "This machine's addresses on `wg-peerlab`.";
      };
      privateKeyFile = secretFileOption "WireGuard private key";
      listenPort = mkOption {
        type = types.nullOr types.port;
        default = 51820;
        description = "UDP port WireGuard listens on (opened in the firewall); null: none.";
      };
      peers = mkOption {
        type = types.listOf types.attrs;
        default = [ ];
        example = literalExpression ''
          [ { publicKey = "..."; allowedIPs = [ "10.21.1.1/32" ]; endpoint = "collector.example:51820"; persistentKeepalive = 25; } ]
        '';
        description = "Peers of `wg-peerlab` (`networking.wireguard.interfaces.<name>.peers` entries).";
      };
    };

    nginx = {
      enable = mkEnableOption "nginx on the WireGuard address in front of the metrics and websocket tools and the exporters";
      listenAddress = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Address nginx listens on; null: the first of `wireguard.ips` (without its prefix length).";
      };
      port = mkOption {
        type = types.port;
        default = 9000;
        description = "Port nginx listens on (opened on `wg-peerlab` only).";
      };
    };

    exporters = {
      node.enable = mkOption {
        type = types.bool;
        default = honeynode;
        defaultText = literalExpression ''role == "honeynode"'';
        description = "The Prometheus node exporter (127.0.0.1:9100).";
      };
      process.enable = mkOption {
        type = types.bool;
        default = honeynode;
        defaultText = literalExpression ''role == "honeynode"'';
        description = "The Prometheus process exporter (127.0.0.1:9256).";
      };
    };

    internal.commands = mkOption {
      type = types.attrsOf (types.listOf types.str);
      default = { };
      internal = true;
      description = "Each peerlab-* unit's ExecStart as an argv (set where the unit is).";
    };

    generated = mkOption {
      type = types.attrs;
      internal = true;
      readOnly = true;
      description = ''
        What the module generates, for tests: `natsConfig` (the JSON text, leaf password as
        `@LEAF_PASSWORD@`), `bitcoinConf` (text; null on a collector) and `commands` (each
        peerlab unit's ExecStart as an argv).
      '';
    };
  };

  config = lib.mkMerge [
    {
      services.peerlab.generated = {
        natsConfig = natsConfigText;
        bitcoinConf = if honeynode then bitcoinConfText else null;
        commands = cfg.internal.commands;
      };
    }

    (lib.mkIf cfg.enable {
      assertions =
        [
          {
            assertion = units.isToken cfg.nodeName;
            message = "services.peerlab.nodeName `${cfg.nodeName}` must be a NATS token: letters, digits, `_` and `-` only.";
          }
          {
            assertion = units.isSubject cfg.subjectPrefix;
            message = "services.peerlab.subjectPrefix `${cfg.subjectPrefix}` must be dot-separated NATS tokens (letters, digits, `_`, `-`).";
          }
          {
            assertion = cfg.nodeName != "hub";
            message = "services.peerlab.nodeName must not be `hub`: the collector's JetStream domain is called that.";
          }
          {
            assertion = !(honeynode && cfg.bitcoind.prune != 0 && cfg.bitcoind.prune < 550);
            message = "services.peerlab.bitcoind.prune is ${toString cfg.bitcoind.prune} MiB: it must be 0 (keep every block) or at least 550 (Bitcoin Core's minimum).";
          }
          {
            assertion = !honeynode || cfg.nodeStream.maxBytes <= cfg.nats.jetstream.maxFileStore;
            message = "services.peerlab.nodeStream.maxBytes (${toString cfg.nodeStream.maxBytes}) must fit in services.peerlab.nats.jetstream.maxFileStore (${toString cfg.nats.jetstream.maxFileStore}).";
          }
          {
            assertion = !natsNeedsSecret || cfg.collector.leafPasswordFile != null;
            message =
              if honeynode then
                "services.peerlab.collector.host is set, so services.peerlab.collector.leafPasswordFile must be too (the leafnode link's password)."
              else
                "services.peerlab.collector.leafPasswordFile must be set on a collector (the password honeynodes' leafnode links log in with).";
          }
          {
            assertion = !cfg.wireguard.enable || cfg.wireguard.privateKeyFile != null;
            message = "services.peerlab.wireguard.enable needs services.peerlab.wireguard.privateKeyFile.";
          }
          {
            assertion = !cfg.wireguard.enable || cfg.wireguard.ips != [ ];
            message = "services.peerlab.wireguard.enable needs at least one address in services.peerlab.wireguard.ips.";
          }
          {
            assertion = !cfg.nginx.enable || cfg.nginx.listenAddress != null || cfg.wireguard.ips != [ ];
            message = "services.peerlab.nginx needs services.peerlab.nginx.listenAddress or an address in services.peerlab.wireguard.ips.";
          }
        ]
        ++ map (f: {
          assertion = lib.hasPrefix "/" f.path && !lib.hasPrefix builtins.storeDir f.path;
          message = "${f.option} must be an absolute path outside the Nix store (a secret in the store is readable by every user); got `${f.path}`.";
        }) secretFiles;

      environment.systemPackages = [ cfg.package ];

      # The local nats-server (both roles). Its config is in the store without the leaf
      # password; when the link has one, ExecStartPre copies the config into the runtime
      # directory (0600, only this unit's dynamic user) and puts the password in from the
      # credential, so the secret is never in the store or on a command line.
      services.peerlab.internal.commands.peerlab-nats = natsArgv;

      systemd.services.peerlab-nats =
        {
          description = "peerlab nats-server (${cfg.role})";
          wantedBy = [ "multi-user.target" ];
          # The collector's leafnode listener binds its WireGuard address.
          after = [ "network-online.target" ] ++ wireguardUnit;
          wants = [ "network-online.target" ] ++ wireguardUnit;
          startLimitIntervalSec = 120;
          startLimitBurst = 3;
          serviceConfig =
            units.hardening.default
            // units.hardening.restart
            // {
              RestartSec = 5;
              DynamicUser = true;
              StateDirectory = "peerlab-nats";
              RuntimeDirectory = "peerlab-nats";
              RuntimeDirectoryMode = "0700";
              LimitNOFILE = 65536;
              ExecStart = units.execLine natsArgv;
              ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
            }
            // lib.optionalAttrs natsNeedsSecret {
              LoadCredential = [ "leaf-password:${cfg.collector.leafPasswordFile}" ];
              ExecStartPre = [
                (units.execLine [
                  "${pkgs.coreutils}/bin/install"
                  "-m"
                  "0600"
                  "${natsStoreConfig}"
                  natsRuntimeConfig
                ])
                (units.execLine [
                  "${pkgs.replace-secret}/bin/replace-secret"
                  natsConf.placeholder
                  "%d/leaf-password"
                  natsRuntimeConfig
                ])
              ];
            };
        };
    })
  ];
}
