# Bitcoin Core for a honeynode: USDT tracepoints (the eBPF extractor attaches to them) and
# the multiprocess `libexec/bitcoin-node` with Cap'n Proto IPC (the IPC extractor talks to
# it), built from the GitHub tag. No wallet, GUI, ZMQ, tests or benchmarks.
#
# The source hash is not pinned yet (this repository was prepared without network access):
# the first `nix build .#bitcoind-traceable` fails with "hash mismatch ... got: sha256-...";
# put that value in `hash` below (or override: `bitcoind-traceable.override { hash = ...; }`).
{
  lib,
  stdenv,
  fetchFromGitHub,
  cmake,
  pkg-config,
  boost,
  libevent,
  capnproto,
  libsystemtap,
  sqlite,
  withWallet ? false,
  version ? "30.0",
  hash ? lib.fakeHash,
}:

stdenv.mkDerivation {
  pname = "bitcoind-traceable";
  inherit version;

  src = fetchFromGitHub {
    owner = "bitcoin";
    repo = "bitcoin";
    tag = "v${version}";
    inherit hash;
  };

  # capnp (the schema compiler) runs at build time; libsystemtap provides <sys/sdt.h>.
  nativeBuildInputs = [
    cmake
    pkg-config
    capnproto
  ];
  buildInputs = [
    boost
    libevent
    capnproto
    libsystemtap
  ]
  ++ lib.optional withWallet sqlite;

  cmakeFlags = [
    (lib.cmakeBool "WITH_USDT" true)
    (lib.cmakeBool "ENABLE_IPC" true)
    (lib.cmakeBool "BUILD_DAEMON" true)
    (lib.cmakeBool "BUILD_CLI" true)
    (lib.cmakeBool "ENABLE_WALLET" withWallet)
    (lib.cmakeBool "BUILD_GUI" false)
    (lib.cmakeBool "WITH_ZMQ" false)
    (lib.cmakeBool "BUILD_TESTS" false)
    (lib.cmakeBool "BUILD_BENCH" false)
    (lib.cmakeBool "BUILD_FUZZ_BINARY" false)
  ];

  enableParallelBuilding = true;
  doCheck = false;

  # The tracepoints are ELF notes (.note.stapsdt), which stripping keeps; check they are there.
  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    for binary in $out/bin/bitcoind $out/libexec/bitcoin-node; do
      grep -q stapsdt "$binary" || { echo "$binary has no USDT tracepoints" >&2; exit 1; }
    done
    runHook postInstallCheck
  '';

  meta = {
    description = "Bitcoin Core with USDT tracepoints and IPC, for peerlab honeynodes";
    homepage = "https://bitcoincore.org/";
    license = lib.licenses.mit;
    mainProgram = "bitcoind";
    platforms = lib.platforms.linux;
  };
}
