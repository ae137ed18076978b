//! Network reach of a sandbox. `--scope none` leaves the sandbox's own
//! network namespace with nothing but loopback (brought up by its init);
//! the other scopes attach a veth pair with addresses from 10.0.0.0/8, NAT
//! and an nftables table of the sandbox's own that decides what it reaches.
//! The host tools `ip` and `nft` do the configuration, as Podman's CNI
//! plugins do; the table and the host end of the pair go with the sandbox.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::spec::Scope;

/// Address ranges counted as local networks.
const PRIVATE: &str = "{ 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 100.64.0.0/10 }";

/// A sandbox's network attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    id: String,
    scope: Scope,
    slot: u32,
}

fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<()> {
    let what = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("running {program} (is it installed?)"), e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|e| Error::io(what.clone(), e))?;
    }
    let out = child.wait_with_output().map_err(|e| Error::io(what.clone(), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Setup(format!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}

impl Network {
    /// The attachment of sandbox `id` in address slot `slot` (a /30 each).
    pub fn new(id: &str, slot: u32, scope: Scope) -> Network {
        Network { id: id.to_owned(), scope, slot }
    }

    /// The host's end of the pair.
    pub fn host_interface(&self) -> String {
        format!("mc{}", &self.id[..self.id.len().min(12)])
    }

    fn table(&self) -> String {
        format!("monocore_{}", self.id)
    }

    /// Host and sandbox addresses: 10.200.0.0/16 cut into /30s.
    pub fn addresses(&self) -> (Ipv4Addr, Ipv4Addr) {
        let base = u32::from(Ipv4Addr::new(10, 200, 0, 0)) + (self.slot % 16_384) * 4;
        (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
    }

    /// Checks `ip` and `nft` are there.
    pub fn check() -> Result<()> {
        for tool in ["ip", "nft"] {
            run(tool, &["-V"], None).map_err(|_| Error::RuntimeUnavailable {
                runtime: "network scopes".into(),
                why: format!("'{tool}' is missing (apt-get install iproute2 nftables)"),
            })?;
        }
        Ok(())
    }

    /// Attaches the network namespace of process `pid`.
    pub fn attach(&self, pid: u32) -> Result<()> {
        let (host, sandbox) = self.addresses();
        let hif = self.host_interface();
        let pid = pid.to_string();
        run("ip", &["link", "add", &hif, "type", "veth", "peer", "name", "eth0", "netns", &pid], None)?;
        self.host_side()?;
        let inside = |args: &[&str]| {
            let mut all = vec!["-t", pid.as_str(), "-n", "ip"];
            all.extend_from_slice(args);
            run("nsenter", &all, None)
        };
        inside(&["addr", "add", &format!("{sandbox}/30"), "dev", "eth0"])?;
        inside(&["link", "set", "eth0", "up"])?;
        inside(&["route", "add", "default", "via", &host.to_string()])?;
        self.rules()
    }

    /// Makes a tap device named [`Network::host_interface`] for a VM to
    /// open (the microVM runtime), addressed and filtered as the host end
    /// of a veth pair; the guest configures its side with
    /// [`Network::addresses`]. [`Network::detach`] removes it.
    pub fn attach_tap(&self) -> Result<()> {
        run("ip", &["tuntap", "add", "dev", &self.host_interface(), "mode", "tap"], None)?;
        self.host_side()?;
        self.rules()
    }

    /// The host end's address, up. IPv6 is off on it before it comes up:
    /// the scopes and their nftables rules are IPv4, and an IPv6 link-local
    /// address would let the sandbox reach the host's services around them.
    fn host_side(&self) -> Result<()> {
        let (host, _) = self.addresses();
        let hif = self.host_interface();
        let no_v6 = format!("/proc/sys/net/ipv6/conf/{hif}/disable_ipv6");
        match std::fs::write(&no_v6, "1") {
            // A kernel without IPv6 has no such file, and nothing to turn off.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("turning IPv6 off on {hif}"), e));
            }
            _ => {}
        }
        run("ip", &["addr", "add", &format!("{host}/30"), "dev", &hif], None)?;
        run("ip", &["link", "set", &hif, "up"], None)
    }

    /// Forwarding on, and the sandbox's nftables table.
    fn rules(&self) -> Result<()> {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| Error::io("enabling IPv4 forwarding", e))?;
        run("nft", &["-f", "-"], Some(&self.ruleset()))
    }

    fn ruleset(&self) -> String {
        let (_, sandbox) = self.addresses();
        let (hif, table) = (self.host_interface(), self.table());
        let (forward, input) = match self.scope {
            Scope::None | Scope::Any => (String::new(), String::new()),
            Scope::Local => (format!("iifname \"{hif}\" ip daddr != {PRIVATE} drop"), String::new()),
            Scope::Public => (
                format!("iifname \"{hif}\" ip daddr {PRIVATE} drop"),
                format!("iifname \"{hif}\" ct state established,related accept\n    iifname \"{hif}\" drop"),
            ),
        };
        format!(
            "table ip {table} {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {sandbox} oifname != \"{hif}\" masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    {forward}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    {input}
  }}
}}
"
        )
    }

    /// A `resolv.conf` for the sandbox: the host's, unless it points at a
    /// resolver on the host's loopback, which the sandbox cannot reach.
    pub fn resolv_conf() -> String {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let usable: Vec<&str> = host
            .lines()
            .filter(|l| !l.trim_start().starts_with("nameserver 127.") && !l.trim_start().starts_with("nameserver ::1"))
            .collect();
        if usable.iter().any(|l| l.trim_start().starts_with("nameserver")) {
            usable.join("\n") + "\n"
        } else {
            "nameserver 1.1.1.1\nnameserver 8.8.8.8\n".into()
        }
    }

    /// Removes the table and the host end (the sandbox's end went with its namespace).
    pub fn detach(&self) {
        let _ = run("nft", &["delete", "table", "ip", &self.table()], None);
        let _ = run("ip", &["link", "del", &self.host_interface()], None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        let n = Network::new("0123456789abcdef", 2, Scope::Local);
        assert_eq!(n.addresses(), (Ipv4Addr::new(10, 200, 0, 9), Ipv4Addr::new(10, 200, 0, 10)));
        assert_eq!(n.host_interface(), "mc0123456789ab");
        assert!(n.host_interface().len() <= 15);
        let rules = n.ruleset();
        assert!(rules.contains("ip daddr != { 10.0.0.0/8"), "{rules}");
        let public = Network::new("ab", 0, Scope::Public).ruleset();
        assert!(public.contains("ip daddr { 10.0.0.0/8") && public.contains("drop"), "{public}");
    }
}
