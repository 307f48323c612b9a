# services.peerlab with role = "honeynode": bitcoind, its log rotation, the extractors, the
# tools, the recorder and the node's JetStream stream. The nats-server is in default.nix.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.peerlab;
  units = import ./units.nix { inherit lib; };
  bitcoindConf = import ./bitcoind-conf.nix { inherit lib; };
  inherit (units) hardening;

  b = cfg.bitcoind;
  ex = cfg.extractors;
  chain = bitcoindConf.chains.${b.chain};
  peerlab = "${cfg.package}/bin/peerlab";
  nats = units.natsArgs cfg.nats.port;
  natsUnit = [ "peerlab-nats.service" ];
  bitcoindUnit = lib.optional b.enable "peerlab-bitcoind.service";

  runtimeDir = "/run/peerlab-bitcoind";
  pidFile = "${runtimeDir}/bitcoind.pid";
  ipcSocket = "${runtimeDir}/node.sock";
  chainDir = lib.removeSuffix "/" "${b.dataDir}/${chain.subdir}";
  debugLog = "${chainDir}/debug.log";
  debugLogGroup = "peerlab-debuglog";

  bitcoinConfFile = pkgs.writeText "peerlab-bitcoin.conf" cfg.generated.bitcoinConf;
  bitcoindArgv = [
    b.executable
    "-conf=${bitcoinConfFile}"
    "-datadir=${b.dataDir}"
  ];

  # Events an extractor could not hand to NATS wait on disk, per unit.
  spool = unit: {
    args = [
      "--spool-dir"
      "/var/lib/peerlab/spool/${unit}"
      "--spool-max-bytes"
      (toString ex.spoolMaxBytes)
    ];
    serviceConfig.StateDirectory = "peerlab/spool/${unit}";
  };

  extractor =
    name: spec:
    let
      unit = "peerlab-extractor-${name}";
      s = spool unit;
    in
    spec
    // {
      argv = [ peerlab "extract" name ] ++ nats ++ spec.args ++ s.args ++ ex.${name}.extraArgs;
      after = natsUnit ++ (spec.after or [ ]);
      wants = natsUnit ++ (spec.after or [ ]);
      serviceConfig = s.serviceConfig // (spec.serviceConfig or { });
    };

  tool =
    name: args:
    {
      enable = cfg.tools.${name}.enable;
      description = "peerlab ${name} tool";
      argv = [ peerlab "tools" name ] ++ nats ++ args ++ cfg.tools.${name}.extraArgs;
      after = natsUnit;
      wants = natsUnit;
    };

  # Every peerlab unit of a honeynode, by unit name; `enable` picks the ones generated.
  peerlabUnits = lib.filterAttrs (_: u: u.enable) {
    peerlab-extractor-ebpf = extractor "ebpf" {
      enable = ex.ebpf.enable;
      description = "peerlab eBPF extractor (bitcoind's USDT tracepoints)";
      args = [
        "--bitcoind-path"
        b.executable
        "--pid-file"
        pidFile
      ];
      after = bitcoindUnit;
      sandbox = hardening.ebpf;
    };

    peerlab-extractor-rpc = extractor "rpc" {
      enable = ex.rpc.enable;
      description = "peerlab RPC extractor";
      args = [
        "--rpc-host"
        "127.0.0.1:${toString b.rpcPort}"
        "--rpc-user"
        ex.rpc.user
        "--rpc-password-file"
        "%d/rpc-password"
      ];
      after = bitcoindUnit;
      serviceConfig.LoadCredential = [ "rpc-password:${toString ex.rpc.passwordFile}" ];
    };

    # Started before bitcoind (which is ordered after it), so the node's `addnode` finds it.
    peerlab-extractor-p2p = extractor "p2p" {
      enable = ex.p2p.enable;
      description = "peerlab P2P extractor (a peer the node dials)";
      args = [
        "--p2p-address"
        ex.p2p.address
        "--p2p-network"
        chain.network
      ];
    };

    # debug.log belongs to bitcoind's user, and bitcoind creates its files with umask 077, so
    # neither DynamicUser nor group ownership alone would let this unit read it. The data
    # directory instead carries a default ACL for the `peerlab-debuglog` group (tmpfiles
    # below), which new files inherit whatever bitcoind's umask, and this unit (still a
    # DynamicUser) joins that group. PrivateUsers is off: in a private user namespace the
    # supplementary group is not mapped. The directory is read-only here.
    peerlab-extractor-log = extractor "log" {
      enable = ex.log.enable;
      description = "peerlab log extractor (follows debug.log)";
      args = [
        "--debug-log"
        debugLog
      ];
      after = bitcoindUnit;
      serviceConfig = {
        SupplementaryGroups = [ debugLogGroup ];
        PrivateUsers = false;
        ReadOnlyPaths = [ b.dataDir ];
      };
    };

    peerlab-extractor-ipc = extractor "ipc" {
      enable = ex.ipc.enable;
      description = "peerlab IPC extractor (Cap'n Proto chain tip)";
      args = [
        "--ipc-socket-path"
        ipcSocket
      ];
      after = bitcoindUnit;
      sandbox = hardening.default // {
        ProtectProc = "default";
      };
    };

    peerlab-tool-metrics = tool "metrics" [
      "-m"
      cfg.tools.metrics.address
    ];
    peerlab-tool-websocket = tool "websocket" [
      "-w"
      cfg.tools.websocket.address
    ];
    peerlab-tool-alerts = tool "alerts" [ ];

    peerlab-recorder = {
      enable = cfg.recorder.enable;
      description = "peerlab recorder (every local event, rotated, oldest deleted over budget)";
      argv =
        [
          peerlab
          "record"
        ]
        ++ nats
        ++ [
          "-o"
          "/var/lib/peerlab/recordings/${cfg.nodeName}.mcap"
          "--rotate-mib"
          (toString cfg.recorder.rotateMiB)
          "--keep-mib"
          (toString cfg.recorder.keepMiB)
        ]
        ++ cfg.recorder.extraArgs;
      after = natsUnit;
      wants = natsUnit;
      serviceConfig.StateDirectory = "peerlab/recordings";
    };

    # Creates (or updates) the node's JetStream stream PEERLAB_<node> over
    # `<prefix>.<node>.>` in the FLEET account, through LOCAL's `$JS.fleet.API` import. The
    # collector sources it, so events published while the link is down reach it later.
    peerlab-node-stream = {
      enable = true;
      description = "peerlab: the node's JetStream stream for the collector";
      argv =
        [
          peerlab
          "fleet"
          "node-stream"
        ]
        ++ nats
        ++ [
          "--subject-prefix"
          cfg.subjectPrefix
          "--node"
          cfg.nodeName
          "--max-bytes"
          (toString cfg.nodeStream.maxBytes)
          "--max-age-secs"
          (toString cfg.nodeStream.maxAgeSecs)
        ];
      after = natsUnit;
      wants = natsUnit;
      requires = natsUnit;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        Restart = "on-failure";
      };
    };
  };

  # After start: the eBPF extractor (another user) reads the pid file, the IPC extractor
  # connects to the socket. Both appear a moment after the process starts.
  readyScript = pkgs.writeShellScript "peerlab-bitcoind-ready" ''
    set -eu
    wait_for() {
      while [ ! -e "$1" ]; do
        ${pkgs.coreutils}/bin/kill -0 "$MAINPID" || exit 1
        ${pkgs.coreutils}/bin/sleep 0.2
      done
    }
    ${lib.optionalString ex.ebpf.enable ''
      wait_for ${pidFile}
      ${pkgs.coreutils}/bin/chmod a+r ${pidFile}
    ''}
    ${lib.optionalString ex.ipc.enable ''
      wait_for ${ipcSocket}
      ${pkgs.coreutils}/bin/chmod a+rw ${ipcSocket}
    ''}
  '';

  # Rename debug.log, SIGHUP bitcoind (it reopens the file at its next line), then append the
  # renamed text to the day's multi-member gzip next to it; delete days older than keepDays.
  rotateScript = pkgs.writeShellScript "peerlab-bitcoind-logrotate" ''
    set -eu
    export PATH=${lib.makeBinPath [ pkgs.coreutils pkgs.gzip pkgs.findutils ]}
    log=${debugLog}
    rotating="$log.rotating"
    day_file() { echo "${chainDir}/debug.log-$(date -u +%Y%m%d)-${cfg.nodeName}.gz"; }
    # Left over by an interrupted run: keep it first.
    if [ -e "$rotating" ]; then
      gzip -c "$rotating" >> "$(day_file)"
      rm "$rotating"
    fi
    if [ -s "$log" ]; then
      mv "$log" "$rotating"
      if [ -e ${pidFile} ]; then
        kill -HUP "$(cat ${pidFile})"
        # Lines written before bitcoind reopens still go to the renamed file.
        for _ in $(seq 300); do
          [ -e "$log" ] && break
          sleep 0.2
        done
      fi
      gzip -c "$rotating" >> "$(day_file)"
      rm "$rotating"
    fi
    find ${chainDir} -maxdepth 1 -name 'debug.log-*.gz' -mtime +${toString b.logRotation.keepDays} -delete
  '';

  # Read access for the log extractor's group, inherited by every file bitcoind creates.
  debugLogAcl = lib.concatStringsSep "," [
    "group:${debugLogGroup}:r-x"
    "mask::r-x"
    "default:user::rwx"
    "default:group::r-x"
    "default:other::---"
    "default:group:${debugLogGroup}:r-x"
    "default:mask::r-x"
  ];
in
{
  config = lib.mkIf (cfg.enable && cfg.role == "honeynode") {
    assertions = [
      {
        assertion = !ex.rpc.enable || ex.rpc.passwordFile != null;
        message = "services.peerlab.extractors.rpc.passwordFile must be set (the RPC extractor's password; its hash goes in services.peerlab.bitcoind.rpcUsers.${ex.rpc.user}.passwordHMAC), or disable services.peerlab.extractors.rpc.";
      }
      {
        assertion = !ex.rpc.enable || !b.enable || (b.rpcUsers.${ex.rpc.user}.passwordHMAC or null) != null;
        message = "services.peerlab.bitcoind.rpcUsers.${ex.rpc.user}.passwordHMAC must be set for the RPC extractor (`rpcauth.py ${ex.rpc.user} <password>` prints `salt$hmac`).";
      }
      {
        assertion = b.enable || !(ex.ebpf.enable || ex.rpc.enable || ex.log.enable || ex.ipc.enable);
        message = "services.peerlab.bitcoind.enable = false leaves the eBPF, RPC, log and IPC extractors nothing to watch: disable them too.";
      }
    ];

    services.peerlab.internal.commands =
      lib.mapAttrs (_: u: u.argv) peerlabUnits
      // lib.optionalAttrs b.enable { peerlab-bitcoind = bitcoindArgv; };

    services.peerlab.bitcoind.rpcUsers = lib.mkIf ex.rpc.enable {
      ${ex.rpc.user}.rpcwhitelist = lib.mkDefault bitcoindConf.rpcExtractorWhitelist;
    };

    environment.systemPackages = lib.optional b.enable b.package;

    users = lib.mkIf b.enable {
      users.peerlab-bitcoind = {
        isSystemUser = true;
        group = "peerlab-bitcoind";
        home = b.dataDir;
        description = "peerlab honeynode bitcoind";
      };
      groups.peerlab-bitcoind = { };
      groups.${debugLogGroup} = { };
    };

    systemd.tmpfiles.rules = lib.optionals b.enable (
      [ "d ${b.dataDir} 0750 peerlab-bitcoind peerlab-bitcoind -" ]
      ++ lib.optional (chainDir != b.dataDir) "d ${chainDir} 0750 peerlab-bitcoind peerlab-bitcoind -"
      ++ lib.optionals ex.log.enable (
        [ "a+ ${b.dataDir} - - - - ${debugLogAcl}" ]
        ++ lib.optional (chainDir != b.dataDir) "a+ ${chainDir} - - - - ${debugLogAcl}"
        # A debug.log from before this module: readable too (later ones inherit the default).
        ++ [ "a+ ${debugLog} - - - - group:${debugLogGroup}:r--,mask::r--" ]
      )
    );

    networking.firewall.allowedTCPPorts = lib.optional (b.enable && b.openFirewall) b.port;

    systemd.services =
      lib.mapAttrs (
        _: u: units.peerlabService (u // { logLevel = cfg.logLevel; })
      ) peerlabUnits
      // lib.optionalAttrs b.enable {
        peerlab-bitcoind = {
          description = "peerlab honeynode bitcoind (${b.chain})";
          wantedBy = [ "multi-user.target" ];
          after = [ "network-online.target" ] ++ lib.optional ex.p2p.enable "peerlab-extractor-p2p.service";
          wants = [ "network-online.target" ];
          serviceConfig = hardening.default // {
            User = "peerlab-bitcoind";
            Group = "peerlab-bitcoind";
            ExecStart = units.execLine bitcoindArgv;
            ExecStartPost = lib.optional (ex.ebpf.enable || ex.ipc.enable) "${readyScript}";
            Restart = "on-failure";
            RestartSec = 30;
            # Loading a mainnet block index takes a while; so does flushing it at stop.
            TimeoutStartSec = "15min";
            TimeoutStopSec = "10min";
            RuntimeDirectory = "peerlab-bitcoind";
            RuntimeDirectoryMode = "0755";
            ReadWritePaths = [ b.dataDir ];
          };
        };
      }
      // lib.optionalAttrs (b.enable && b.logRotation.enable) {
        peerlab-bitcoind-logrotate = {
          description = "peerlab: rotate bitcoind's debug.log";
          after = [ "peerlab-bitcoind.service" ];
          serviceConfig = hardening.default // {
            Type = "oneshot";
            User = "peerlab-bitcoind";
            Group = "peerlab-bitcoind";
            ExecStart = "${rotateScript}";
            ReadWritePaths = [ b.dataDir ];
            IPAddressAllow = "";
          };
        };
      };

    systemd.timers = lib.mkIf (b.enable && b.logRotation.enable) {
      peerlab-bitcoind-logrotate = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = b.logRotation.schedule;
          Persistent = true;
        };
      };
    };
  };
}
