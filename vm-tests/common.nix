# What the VM tests share: test-only secrets and keys, and a regtest honeynode configuration.
#
# Every secret here is test-only and deliberately public: it is written into the Nix store
# (world-readable) with pkgs.writeText, which is fine inside a throwaway VM test and never
# fine for a deployment. The units still receive them the deployment way: tmpfiles copies
# them out of the store to /run/peerlab-test (0400, root), the `*File` options name those
# copies, and systemd hands them to the units as credentials.
{ pkgs, self }:

let
  secret = name: text: {
    store = pkgs.writeText "peerlab-test-${name}" text;
    path = "/run/peerlab-test/${name}";
  };
in
rec {
  secrets = {
    leafPassword = secret "leaf-password" "0f9e8d7c6b5a49382716a5b4c3d2e1f00f9e8d7c6b5a4938";
    rpcExtractorPassword = secret "rpc-extractor-password" "vm-test-rpc-extractor-password";
    operatorPassword = secret "operator-password" "vm-test-operator-password";
    honeynodeWireguardKey = secret "wg-honeynode" "mCF4GjFbEJ2BhAynG5vZ+zHcDr1MNlLOHojm5g9rSUg=";
    collectorWireguardKey = secret "wg-collector" "0HHNin7iHOOhQc29vMHzNDhdj5WEYq/KDXLor7Bmd1c=";
  };

  # The public halves (`wg pubkey` of the keys above; the fleet test checks them).
  wireguardPublicKeys = {
    honeynode = "v6mYeZOWziGAQte98Mx1No1+bhXjFwbNo4BT9qQ/tEk=";
    collector = "/fLxmTb6FEPHCmdSEcC0kDZfKtjgoarg6HkjQBH3+lA=";
  };

  # `salt$hmac` of the passwords above (Bitcoin Core's rpcauth.py with these salts).
  rpcauth = {
    rpc-extractor = "5c0f2b6d9e8a7c1b3d4e5f6a7b8c9d0e$7114f4adbe485d3cfaa5a07c02159733a305e2b470cedfe69ab9b45d9ea884c5";
    operator = "a1b2c3d4e5f60718293a4b5c6d7e8f90$b5f1a173582adabdfd8b8ece4b0f31bfcc223cf22cc05cd079ff7d1a20b4e976";
  };

  # Copies the named secrets out of the store before any unit starts.
  installSecrets = names: {
    systemd.tmpfiles.rules =
      [ "d /run/peerlab-test 0700 root root -" ]
      ++ map (name: "C ${secrets.${name}.path} 0400 root root - ${secrets.${name}.store}") names;
  };

  # bitcoin-cli as the unrestricted operator user.
  cli = "bitcoin-cli -regtest -rpcport=18443 -rpcuser=operator -rpcpassword=vm-test-operator-password";
  # P2WSH(OP_TRUE) on regtest: mining needs no wallet.
  keylessAddress = "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85";

  honeynode =
    {
      nodeName,
      extraSecrets ? [ ],
    }:
    { ... }:
    {
      imports = [
        self.nixosModules.peerlab
        (installSecrets (
          [
            "rpcExtractorPassword"
            "operatorPassword"
          ]
          ++ extraSecrets
        ))
      ];
      virtualisation.memorySize = 3072;
      virtualisation.cores = 2;
      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
      ];
      services.peerlab = {
        enable = true;
        role = "honeynode";
        inherit nodeName;
        bitcoind = {
          chain = "regtest";
          prune = 0;
          rpcUsers = {
            rpc-extractor.passwordHMAC = rpcauth.rpc-extractor;
            # No whitelist: every RPC (mining, the rehearsal's mock clock).
            operator.passwordHMAC = rpcauth.operator;
          };
        };
        extractors.rpc.passwordFile = secrets.rpcExtractorPassword.path;
        # Small budgets: a VM disk.
        nats.jetstream.maxFileStore = 1024 * 1024 * 1024;
        nodeStream.maxBytes = 256 * 1024 * 1024;
      };
    };
}
