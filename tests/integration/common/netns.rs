//! Network namespaces for tests that need several hosts on one machine: each namespace has
//! its own loopback and the veth links the test gives it, so traffic stays between the hosts
//! the test creates. Everything is removed on drop, even after a failed assertion.

use std::process::{Command, Stdio};

/// A network namespace, deleted (with its interfaces) on drop.
pub struct Netns {
    name: String,
}

/// Runs `ip` with `args`, asserting success.
pub fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("`ip` runs (iproute2; the tests run as root)");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Netns {
    /// Creates namespace `name` (removing a leftover of that name) with loopback up.
    pub fn create(name: &str) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "delete", name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", name]);
        let netns = Netns {
            name: name.to_string(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"]);
        netns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` to be run inside the namespace (`ip netns exec` execs it, so the child's pid
    /// is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program)
            .stdin(Stdio::null());
        command
    }

    /// Sets interface `interface` of this namespace up or down (a cut link).
    pub fn set_link(&self, interface: &str, up: bool) {
        ip(&[
            "-n",
            &self.name,
            "link",
            "set",
            interface,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Links `a` and `b` with a veth pair: `a_if` with `a_addr` (CIDR) in `a`, `b_if` with
/// `b_addr` in `b`, both up.
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    ip(&[
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    ip(&["-n", &a.name, "addr", "add", a_addr, "dev", a_if]);
    ip(&["-n", &b.name, "addr", "add", b_addr, "dev", b_if]);
    ip(&["-n", &a.name, "link", "set", a_if, "up"]);
    ip(&["-n", &b.name, "link", "set", b_if, "up"]);
}
