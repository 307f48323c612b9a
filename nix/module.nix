# NixOS module `services.peerlab`: a honeynode (traceable bitcoind, nats-server, extractors,
# tools, recorder) or the fleet's collector (hub nats-server, fleet recorder, per-node
# metrics). `self` is this flake, for the default packages; evaluation tests pass a stub.
self: import ./module/default.nix self
