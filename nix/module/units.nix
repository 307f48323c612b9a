# Building blocks of the peerlab units. A plain function set, not a module.
{ lib }:

let
  hardening = import ./hardening.nix { inherit lib; };
in
rec {
  inherit hardening;

  # One systemd command line from an argv, without a shell. Words made of safe characters
  # stay bare; anything else is double-quoted with `\` and `"` escaped. `$` is doubled (systemd
  # expands `$NAME`); `%` is left alone on purpose: the module uses systemd specifiers (`%d`, the
  # credentials directory), so a literal `%` in extraArgs must be written `%%`.
  quoteArg =
    arg:
    let
      dollars = lib.replaceStrings [ "$" ] [ "$$" ] arg;
    in
    if builtins.match "[A-Za-z0-9_@%+=:,./-]+" arg != null then
      arg
    else
      "\"" + lib.replaceStrings [ "\\" "\"" ] [ "\\\\" "\\\"" ] dollars + "\"";

  execLine = argv: lib.concatMapStringsSep " " quoteArg argv;

  # A long-running peerlab unit with peer-observer's settings: after the network and NATS,
  # restarted forever (3 starts per 2 minutes before systemd gives up for a while), its own
  # dynamic user, the default sandbox unless `sandbox` says otherwise.
  #
  # `u`: description, argv, and optionally after, wants, requires, sandbox, environment,
  # serviceConfig (merged last), logLevel.
  peerlabService =
    u:
    {
      description = u.description;
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ] ++ (u.after or [ ]);
      wants = [ "network-online.target" ] ++ (u.wants or [ ]);
      requires = u.requires or [ ];
      startLimitIntervalSec = 120;
      startLimitBurst = 3;
      environment = {
        PEERLAB_LOG = u.logLevel or "info,async_nats=warn";
      }
      // (u.environment or { });
      serviceConfig =
        (u.sandbox or hardening.default)
        // hardening.restart
        // {
          DynamicUser = true;
          ExecStart = execLine u.argv;
        }
        // (u.serviceConfig or { });
    };

  # The NATS flags every peerlab command takes.
  natsArgs = port: [
    "-a"
    "nats://127.0.0.1:${toString port}"
  ];

  # A NATS token: a node name, a JetStream domain, part of a stream name.
  isToken = name: builtins.match "[A-Za-z0-9_-]+" name != null;
  isSubject = s: builtins.match "[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+)*" s != null;
}
