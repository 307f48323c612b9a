# The peerlab binary. eBPF programs are C compiled by clang inside build.rs.
{ lib, rustPlatform, clang, libbpf, pkg-config }:

rustPlatform.buildRustPackage {
  pname = "peerlab";
  version = "0.1.0";
  src = lib.cleanSource ../.;
  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ clang pkg-config ];
  buildInputs = [ libbpf ];
  # build.rs looks for clang through $BPF_CLANG first.
  BPF_CLANG = "${clang}/bin/clang";
  BPF_INCLUDE = "${libbpf}/include";

  # Integration tests need a traceable bitcoind, nats-server and root for eBPF: they run in
  # the NixOS VM tests instead of the sandbox.
  doCheck = false;

  meta = {
    description = "Bitcoin honeynode observer stack with a record-and-replay testbed";
    license = lib.licenses.mit;
    mainProgram = "peerlab";
    platforms = lib.platforms.linux;
  };
}
