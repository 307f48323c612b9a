# nats-server configurations (as attribute sets; the module writes them as JSON, which
# nats-server reads as its configuration format). A plain function set, not a module.
#
# The leaf password never appears here: the configs carry `placeholder`, which the unit
# replaces at start from its credential (replace-secret) in a runtime copy.
{ lib }:

rec {
  placeholder = "@LEAF_PASSWORD@";

  # An IPv6 address goes in brackets in a URL.
  urlHost = host: if lib.hasInfix ":" host then "[${host}]" else host;

  common = s: {
    server_name = s.serverName;
    host = "127.0.0.1";
    port = s.port;
    # The monitoring endpoint `peerlab status --monitor` reads (varz, jsz, leafz).
    http = "127.0.0.1:${toString s.monitorPort}";
    max_payload = s.maxPayload;
  };

  # A honeynode's server. Two accounts:
  # - LOCAL: every local client (no credentials: `no_auth_user`). Extractors publish
  #   peer-observer's flat subjects (`netmsg`, `rpc`, ...) and `peerlab.>` (counters) here,
  #   so peer-observer's own tools work unchanged.
  # - FLEET: sees every LOCAL subject again as `<prefix>.<node>.<subject>` (stream imports
  #   with a prefix), owns the node's JetStream (domain = node name) and is the account the
  #   leafnode link to the collector binds, so the link carries only prefixed subjects. LOCAL
  #   reaches FLEET's JetStream API as `$JS.fleet.API.>` (what `fleet node-stream` uses).
  #
  # `s`: serverName, port, monitorPort, maxPayload, node, prefix, storeDir, maxFileStore,
  # leafRemote (null, or { user; host; port; }).
  honeynode =
    s:
    let
      prefixed = "${s.prefix}.${s.node}";
    in
    common s
    // {
      jetstream = {
        domain = s.node;
        store_dir = s.storeDir;
        max_file_store = s.maxFileStore;
      };
      accounts = {
        LOCAL = {
          users = [
            {
              user = "local";
              password = "local";
            }
          ];
          exports = [
            { stream = "*"; }
            { stream = "peerlab.>"; }
          ];
          imports = [
            {
              service = {
                account = "FLEET";
                subject = "$JS.API.>";
              };
              to = "$JS.fleet.API.>";
            }
          ];
        };
        FLEET = {
          jetstream = "enabled";
          exports = [ { service = "$JS.API.>"; } ];
          imports = [
            {
              stream = {
                account = "LOCAL";
                subject = "*";
              };
              prefix = prefixed;
            }
            {
              stream = {
                account = "LOCAL";
                subject = "peerlab.>";
              };
              prefix = prefixed;
            }
          ];
        };
      };
      no_auth_user = "local";
    }
    // lib.optionalAttrs (s.leafRemote != null) {
      leafnodes.remotes = [
        {
          # The password must be URL-safe (e.g. `openssl rand -hex 32`).
          url = "nats-leaf://${s.leafRemote.user}:${placeholder}@${urlHost s.leafRemote.host}:${toString s.leafRemote.port}";
          account = "FLEET";
        }
      ];
    };

  # The collector's hub: one (global) account; honeynodes connect as leafnodes with the leaf
  # user, its own clients on loopback without credentials. JetStream domain `hub`.
  #
  # `s`: serverName, port, monitorPort, maxPayload, storeDir, maxFileStore, leafListen
  # ("<addr>:<port>"), leafUser.
  collector =
    s:
    common s
    // {
      jetstream = {
        domain = "hub";
        store_dir = s.storeDir;
        max_file_store = s.maxFileStore;
      };
      leafnodes = {
        listen = s.leafListen;
        authorization = {
          user = s.leafUser;
          password = placeholder;
        };
      };
    };
}
