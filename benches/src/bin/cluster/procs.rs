//! The node processes of the cluster rows, killed on drop.

use super::floors::rss_kib;
use super::*;

/// Node processes, killed on drop.
pub(super) struct Procs {
    exe: PathBuf,
    nodes: BTreeMap<String, (Child, String)>,
}

impl Procs {
    /// None yet; nodes are this binary re-run as `cluster node`.
    pub(super) fn new() -> Result<Self, AnyError> {
        Ok(Procs {
            exe: std::env::current_exe()?,
            nodes: BTreeMap::new(),
        })
    }

    pub(super) fn spawn(
        &mut self,
        id: &str,
        seed: Option<&str>,
        hot: bool,
    ) -> Result<String, AnyError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = OsCommand::new(&self.exe);
        cmd.args(["node", "--id", id, "--listen", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(s) = seed {
            cmd.args(["--seed", s]);
        }
        if hot {
            cmd.arg("--hot");
        }
        let child = cmd.spawn()?;
        self.nodes.insert(id.to_string(), (child, addr.clone()));
        Ok(addr)
    }

    pub(super) fn addrs(&self) -> Vec<String> {
        self.nodes.values().map(|(_, a)| a.clone()).collect()
    }

    /// Resident set sizes in MiB, by node.
    pub(super) fn rss_mib(&self) -> Vec<(String, f64)> {
        self.nodes
            .iter()
            .map(|(id, (c, _))| (id.clone(), rss_kib(c.id()) / 1024.0))
            .collect()
    }

    /// Process ids, by node.
    pub(super) fn pids(&self) -> Vec<(String, u32)> {
        self.nodes
            .iter()
            .map(|(id, (c, _))| (id.clone(), c.id()))
            .collect()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (c, _) in self.nodes.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
