# systemd sandboxing for the peerlab units, the same set peer-observer's NixOS module applies
# (its `hardening.default`, then every IP address allowed), plus the few per-unit exceptions.
# A plain attribute set, not a module: units merge it into their serviceConfig.
{ lib }:

let
  # Syscalls no observer needs; kept out on top of @system-service.
  deniedSyscalls = [
    "add_key"
    "get_mempolicy"
    "kcmp"
    "keyctl"
    "mbind"
    "move_pages"
    "name_to_handle_at"
    "personality"
    "process_vm_readv"
    "process_vm_writev"
    "request_key"
    "set_mempolicy"
    "setns"
    "unshare"
    "userfaultfd"
  ];
in
rec {
  default = {
    PrivateTmp = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    NoNewPrivileges = true;
    PrivateDevices = true;
    MemoryDenyWriteExecute = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectClock = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    ProtectControlGroups = true;
    RestrictNamespaces = true;
    LockPersonality = true;
    PrivateUsers = true;
    RestrictSUIDSGID = true;
    RemoveIPC = true;
    RestrictRealtime = true;
    ProtectHostname = true;
    CapabilityBoundingSet = "";
    SystemCallFilter = [
      "@system-service"
      "~${lib.concatStringsSep " " deniedSyscalls}"
      "clone3"
    ];
    SystemCallArchitectures = "native";
    # Deny first, then allow: the units only talk to loopback by default, but listen and
    # connect addresses are options, so every address is allowed like upstream does.
    IPAddressDeny = "any";
    IPAddressAllow = "any";
  };

  # The eBPF extractor loads programs and attaches uprobes to another user's process: exactly
  # these three capabilities, a /proc where bitcoind's pid is visible, and the bpf syscall.
  ebpfCapabilities = [
    "CAP_BPF"
    "CAP_PERFMON"
    "CAP_SYS_RESOURCE"
  ];
  ebpf = default // {
    AmbientCapabilities = ebpfCapabilities;
    CapabilityBoundingSet = ebpfCapabilities;
    PrivateUsers = false;
    ProtectProc = "default";
    ProcSubset = "all";
    SystemCallFilter = [
      "@system-service"
      "~${lib.concatStringsSep " " (deniedSyscalls ++ [ "clone3" ])}"
      "bpf"
      "clone3"
      "@debug"
    ];
  };

  # Settings every long-running peerlab unit shares (peer-observer's unit settings).
  restart = {
    Restart = "always";
    RestartSec = 30;
  };
}
