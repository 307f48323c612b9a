# A fleet of one: a regtest honeynode ships its events over WireGuard to the collector.
# Blocks mined on the honeynode show up in the collector's per-node metrics and recording;
# an attack rehearsed against the honeynode is seen at the collector; and blocks mined while
# the link is cut reach the collector's recording once it is back (the node's JetStream
# stream buffers them).
{ pkgs, self }:

let
  common = import ./common.nix { inherit pkgs self; };
  inherit (common) cli keylessAddress;
  honeynodeIp = "10.21.0.1";
  collectorIp = "10.21.1.1";
  collectorMetrics = "http://127.0.0.1:9200/metrics";
in
pkgs.testers.runNixOSTest {
  name = "peerlab-fleet";

  nodes = import ./fleet-nodes.nix {
    inherit pkgs self;
    inherit honeynodeIp collectorIp;
  };

  testScript = ''
    honeynode_units = [
      "peerlab-nats", "peerlab-node-stream", "peerlab-extractor-p2p", "peerlab-bitcoind",
      "peerlab-extractor-ebpf", "peerlab-extractor-rpc", "peerlab-extractor-log",
      "peerlab-extractor-ipc", "peerlab-tool-metrics", "peerlab-tool-websocket",
      "peerlab-tool-alerts", "peerlab-recorder", "nginx", "wireguard-wg-peerlab",
    ]
    collector_units = [
      "peerlab-nats", "peerlab-collector", "peerlab-tool-metrics-node1", "wireguard-wg-peerlab",
    ]

    COLLECTED = "/var/lib/peerlab-collector/recordings"

    def collector_metric(pattern):
        collector.wait_until_succeeds(f"curl -sf ${collectorMetrics} | grep -Eq '{pattern}'")

    def recorded(machine, directory, subject):
        """Messages on `subject` in every recording under `directory` (peerlab inspect)."""
        status, out = machine.execute(
            f"set -o pipefail; for f in $(find -L {directory} -name '*.mcap' | sort); do"
            f" peerlab inspect \"$f\" --json; done"
            f" | jq -s '[.[].subjects[] | select(.subject == \"{subject}\") | .messages] | add // 0'"
        )
        return int(out.strip()) if status == 0 else -1

    def mine(count):
        honeynode.succeed(f"${cli} generatetoaddress {count} ${keylessAddress}")

    start_all()

    with subtest("every unit comes up"):
        for unit in collector_units:
            collector.wait_for_unit(f"{unit}.service")
        for unit in honeynode_units:
            honeynode.wait_for_unit(f"{unit}.service")
        honeynode.wait_for_open_port(4222)
        collector.wait_for_open_port(4222)
        collector.wait_for_open_port(9200)

    with subtest("WireGuard and the leafnode link are up, the secrets stayed out of the store"):
        # The fixed test keys belong to the public keys the peers were configured with.
        honeynode.succeed("test \"$(wg show wg-peerlab public-key)\" = '${common.wireguardPublicKeys.honeynode}'")
        honeynode.wait_until_succeeds("ping -c1 -W1 ${collectorIp}")
        collector.wait_until_succeeds("curl -sf http://127.0.0.1:8222/leafz | jq -e '.leafnodes >= 1'")
        # The password reached the runtime copy of the config only.
        honeynode.succeed("grep -q @LEAF_PASSWORD@ $(systemctl cat peerlab-nats | grep -o '/nix/store/[^ ]*peerlab-nats.json' | head -1)")
        honeynode.fail("grep -q @LEAF_PASSWORD@ /run/peerlab-nats/nats.json")
        honeynode.succeed("test \"$(stat -c %a /run/peerlab-nats/nats.json)\" = 600")

    with subtest("blocks mined on the honeynode reach the collector's metrics and recording"):
        mine(5)
        collector_metric("^peerobserver_validation_block_connected_latest_height 5$")
        collector.wait_until_succeeds(f"find -L {COLLECTED} -name '*.mcap' -size +0 | grep -q .")
        retry(lambda _: recorded(collector, COLLECTED, "peerlab.node1.validation") >= 5)
        # The honeynode's own pages are served on its WireGuard address.
        collector.succeed("curl -sf http://${honeynodeIp}:9000/peerlab-metrics/metrics | grep -q peerobserver_")

    with subtest("an attack rehearsed against the honeynode is seen at the collector"):
        verdict = honeynode.execute(
            "peerlab rehearse ${self}/scenarios/ping-flood.toml --report /tmp/rehearsal"
            " -a nats://127.0.0.1:4222 --rpc-url http://127.0.0.1:18443"
            " --rpc-user operator --rpc-password-file ${common.secrets.operatorPassword.path}"
            " --p2p 127.0.0.1:18444"
        )
        print(f"rehearsal exit {verdict[0]}:\n{verdict[1]}")
        # The flood (20 pings/s) at the collector: far more inbound pings than the P2P
        # extractor's one per 10 s.
        collector.wait_until_succeeds(
            "curl -sf ${collectorMetrics}"
            " | awk '/^peerobserver_p2p_message_count[{].*direction=\"inbound\".*message=\"ping\"/ {s += $2}"
            " END {exit !(s >= 40)}'"
        )

    with subtest("blocks mined while the link is cut reach the collector's recording"):
        # Stopping the interface's unit (not `ip link set down`) also takes its routes, and
        # starting it again restores both, as a real outage and recovery would.
        honeynode.succeed("systemctl stop wireguard-wg-peerlab.service")
        honeynode.fail("ping -c1 -W1 ${collectorIp}")
        mine(3)
        honeynode.succeed("systemctl start wireguard-wg-peerlab.service")
        honeynode.wait_until_succeeds("ping -c1 -W1 ${collectorIp}")
        mine(2)
        # One validation event per block (the rehearsal mined its own blocks too): the
        # honeynode recorded each locally, and the collector gets each from the node's
        # stream, the 3 mined while the link was down included.
        height = int(honeynode.succeed("${cli} getblockcount").strip())
        retry(lambda _: recorded(honeynode, "/var/lib/peerlab/recordings", "validation") == height)
        retry(lambda _: recorded(collector, COLLECTED, "peerlab.node1.validation") == height)
        collector.wait_until_succeeds("curl -sf http://127.0.0.1:8222/leafz | jq -e '.leafnodes >= 1'")
        # The fleet's health as an operator checks it.
        collector.wait_until_succeeds(
            "peerlab status --subject-prefix peerlab --node '*' --monitor http://127.0.0.1:8222"
            " --expect-nodes node1"
        )
  '';
}
