//! `user[:group]` of the image or `--user`, resolved against the sandbox's
//! own `/etc/passwd` and `/etc/group`, as Docker does.

/// Who the command runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Home directory (for `HOME` when the image does not set it).
    pub home: String,
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`) with the
/// contents of `/etc/passwd` and `/etc/group` (either may be empty).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Credentials, String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<Vec<&str>> =
        passwd.lines().map(|l| l.split(':').collect()).filter(|f: &Vec<&str>| f.len() >= 7).collect();
    let by_name = entries.iter().find(|f| f[0] == user);
    let (uid, pw) = match user.parse::<u32>() {
        Ok(uid) => (uid, entries.iter().find(|f| f[2].parse() == Ok(uid))),
        Err(_) => {
            let f = by_name.ok_or_else(|| format!("no user '{user}' in the image's /etc/passwd"))?;
            (f[2].parse().map_err(|_| format!("bad uid for '{user}' in /etc/passwd"))?, Some(f))
        }
    };
    let groups: Vec<Vec<&str>> =
        group.lines().map(|l| l.split(':').collect()).filter(|f: &Vec<&str>| f.len() >= 4).collect();
    let gid = match grp {
        Some(g) if !g.is_empty() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("no group '{g}' in the image's /etc/group"))?,
        },
        _ => pw.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let name = pw.map(|f| f[0]);
    let mut extra: Vec<u32> = match (name, grp) {
        // An explicit group replaces the user's memberships, as Docker does.
        (Some(name), None) => {
            groups.iter().filter(|f| f[3].split(',').any(|m| m == name)).filter_map(|f| f[2].parse().ok()).collect()
        }
        _ => Vec::new(),
    };
    // setresuid/setresgid read -1 as "leave it as it is": the command
    // would keep running as root.
    if uid == u32::MAX || gid == u32::MAX {
        return Err(format!("user '{spec}': id 4294967295 ((uid_t)-1) is not a usable user or group id"));
    }
    extra.retain(|g| *g != gid);
    extra.insert(0, gid);
    extra.dedup();
    let home = pw.map(|f| f[5]).filter(|h| !h.is_empty()).unwrap_or(if uid == 0 { "/root" } else { "/" });
    Ok(Credentials { uid, gid, groups: extra, home: home.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app\napp:x:1000:\nstaff:x:50:\n";

    #[test]
    fn names_and_numbers() {
        let root = resolve("", PASSWD, GROUP).expect("root");
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let app = resolve("app", PASSWD, GROUP).expect("app");
        assert_eq!(
            (app.uid, app.gid, app.groups.clone(), app.home.as_str()),
            (1000, 1000, vec![1000, 10], "/home/app")
        );
        let num = resolve("1000", PASSWD, GROUP).expect("1000");
        assert_eq!(num.groups, vec![1000, 10]);
        let explicit = resolve("app:staff", PASSWD, GROUP).expect("app:staff");
        assert_eq!((explicit.gid, explicit.groups.clone()), (50, vec![50]));
        let unknown_uid = resolve("4242:7", "", "").expect("numeric ids need no passwd");
        assert_eq!((unknown_uid.uid, unknown_uid.gid, unknown_uid.home.as_str()), (4242, 7, "/"));
    }

    #[test]
    fn minus_one_is_no_id() {
        for spec in ["4294967295", "0:4294967295", "4294967295:0", "ghost"] {
            let passwd = "ghost:x:4294967295:0::/:/bin/sh\n";
            assert!(resolve(spec, passwd, GROUP).is_err(), "{spec}");
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(resolve("ghost", PASSWD, GROUP).is_err());
        assert!(resolve("app:ghosts", PASSWD, GROUP).is_err());
    }
}
