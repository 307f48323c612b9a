# The part of Bitcoin Core's IPC interface that peerlab's ipc extractor calls.
#
# Core declares its interfaces in src/ipc/capnp/*.capnp and libmultiprocess's mp/proxy.capnp.
# On the wire only three things matter: the 64-bit id of each interface, the ordinal of each
# method, and the layout of each struct (field ordinals and types). This file pins exactly
# those, with the ids written out, so it stays independent of Core's C++ annotations and
# include paths. The integration test `ipc::schema_matches_core` compiles Core's own schemas
# from the tree `peerlab setup` builds and checks every id, ordinal and field slot used here
# against them, so a Core version that moves a method fails a test instead of a call.
#
# Methods peerlab never calls still take their ordinal (ordinals must be dense); they are
# declared with empty parameters because their real parameters never cross the wire.

@0x84b82d7267b19628;

# Core's `Init` (init.capnp): the capability the node's socket bootstraps.
interface Init @0x8838c700ba5cba65 {
  construct @0 (threadMap :ThreadMap) -> (threadMap :ThreadMap);
  unusedMakeEcho @1 () -> ();
  unusedMakeMiningOld2 @2 () -> ();
  makeMining @3 (context :Context) -> (result :Mining);
}

# Core's `Mining` (mining.capnp), up to the one method peerlab polls.
interface Mining @0xf9c68436df3af39e {
  isTestChain @0 (context :Context) -> (result :Bool);
  isInitialBlockDownload @1 (context :Context) -> (result :Bool);
  getTip @2 (context :Context) -> (result :BlockRef, hasResult :Bool);
}

# Core's `BlockRef` (common.capnp): `hash` in internal byte order.
struct BlockRef @0xb3be4b8949350369 {
  hash @0 :Data;
  height @1 :Int32;
}

# libmultiprocess's `ThreadMap`: the server makes a thread on which our calls then run.
interface ThreadMap @0xee5e37179ad9dc9d {
  makeThread @0 (name :Text) -> (result :Thread);
}

# libmultiprocess's `Thread`: a handle to one server thread.
interface Thread @0x81c1e2600d0b56c5 {
  getName @0 () -> (result :Text);
}

# libmultiprocess's `Context`, passed with every call: which server thread runs it.
struct Context @0x9c44e6645d0b22c6 {
  thread @0 :Thread;
  callbackThread @1 :Thread;
}
