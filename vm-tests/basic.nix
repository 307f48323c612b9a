# One regtest honeynode: bitcoind, nats-server, every extractor, tool and the recorder come
# up, and what mining does reaches the metrics tool from every extractor.
{ pkgs, self }:

let
  common = import ./common.nix { inherit pkgs self; };
in
pkgs.testers.runNixOSTest {
  name = "peerlab-honeynode";
  nodes.machine = common.honeynode { nodeName = "node1"; };

  testScript = ''
    units = [
      "peerlab-nats", "peerlab-node-stream", "peerlab-extractor-p2p", "peerlab-bitcoind",
      "peerlab-extractor-ebpf", "peerlab-extractor-rpc", "peerlab-extractor-log",
      "peerlab-extractor-ipc", "peerlab-tool-metrics", "peerlab-tool-websocket",
      "peerlab-tool-alerts", "peerlab-recorder",
    ]

    machine.start()
    for unit in units:
        machine.wait_for_unit(f"{unit}.service")
    machine.wait_for_open_port(4222)
    machine.wait_for_open_port(8282)
    machine.wait_for_open_port(8284)

    machine.succeed("${common.cli} generatetoaddress 2 ${common.keylessAddress}")

    def metric(line):
        machine.wait_until_succeeds(f"curl -sf http://127.0.0.1:8282/metrics | grep -q '{line}'")

    # eBPF (validation), IPC, log and RPC extractors, each through the metrics tool.
    metric("^peerobserver_validation_block_connected_latest_height 2$")
    metric("^peerobserver_ipc_block_tip_height 2$")
    metric("^peerobserver_log_events")
    metric("^peerobserver_rpc_peer_info_num_peers [1-9]")
    # The P2P extractor is the node's peer (addnode) and pings it.
    metric("^peerobserver_p2p_message_count{.*message=\"ping\"")

    # The recorder writes; debug.log rotation keeps the log extractor going.
    machine.wait_until_succeeds("find -L /var/lib/peerlab/recordings -name '*.mcap' -size +0 | grep -q .")
    machine.succeed("systemctl start peerlab-bitcoind-logrotate.service")
    machine.succeed("${common.cli} generatetoaddress 1 ${common.keylessAddress}")
    metric("^peerobserver_validation_block_connected_latest_height 3$")
    machine.wait_until_succeeds("ls /var/lib/peerlab-bitcoind/regtest/debug.log-*-node1.gz")
    machine.succeed("systemctl is-active peerlab-extractor-log.service peerlab-extractor-ebpf.service")
  '';
}
