//! Several agent processes on one PostgreSQL database behind one nginx: what an issuer runs
//! when one machine is not enough.
//!
//! Every agent gets the same database (`LANYARD_DATABASE_URL`, a fresh
//! [`crate::postgres::database`]), the same key file (`LANYARD_KEY_FILE`, 32 random bytes made
//! here), the same admin token ([`crate::ADMIN_TOKEN`]) and the same public URL
//! (`LANYARD_PUBLIC_URL`, the balancer's), and a data folder of its own; so all of them are
//! one mediator with one DID. [`Nginx`] balances over them round-robin.

use crate::postgres::TestDatabase;
use crate::{free_port, Agent, AgentProcess, Endpoint, Nginx, NginxOptions};

/// N agents on one database behind one nginx; all stopped (and the database dropped) when
/// dropped.
pub struct Cluster {
    /// The balancer in front of the agents.
    pub nginx: Nginx,
    agents: Vec<AgentProcess>,
    did: String,
    /// The database the agents share.
    pub database: TestDatabase,
    /// Holds the key file.
    _secrets: tempfile::TempDir,
}

impl Cluster {
    /// Starts `agents` agents on a fresh database behind nginx.
    pub fn start(agents: usize) -> Cluster {
        Cluster::start_with(agents, &[])
    }

    /// Starts `agents` agents with extra `LANYARD_*` variables (for every agent, kept across
    /// restarts). They start one after the other: the first makes the schema and the shared
    /// identity, the others find them.
    pub fn start_with(agents: usize, vars: &[(&str, String)]) -> Cluster {
        assert!(agents > 0, "a cluster has at least one agent");
        let database = crate::postgres::database();
        let secrets = tempfile::tempdir().unwrap();
        let key_file = secrets.path().join("deployment.key");
        write_key_file(&key_file);
        // The balancer's port is chosen first: the agents publish its URL.
        let port = free_port();
        let mut shared: Vec<(&str, String)> = vec![
            ("LANYARD_DATABASE_URL", database.url.clone()),
            ("LANYARD_KEY_FILE", key_file.display().to_string()),
            ("LANYARD_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
        ];
        shared.extend(vars.iter().cloned());
        let agents: Vec<AgentProcess> = (0..agents).map(|_| AgentProcess::start(&shared)).collect();
        let did = agents[0].did.clone();
        for agent in &agents {
            assert_eq!(
                agent.did, did,
                "every agent of the cluster is the same mediator"
            );
        }
        let upstreams: Vec<&str> = agents.iter().map(|agent| agent.url.as_str()).collect();
        let nginx = Nginx::start_on(port, &upstreams, &NginxOptions::default());
        Cluster {
            nginx,
            agents,
            did,
            database,
            _secrets: secrets,
        }
    }

    /// The agents, in the order nginx lists them.
    pub fn agents(&self) -> &[AgentProcess] {
        &self.agents
    }

    /// Agent `index` reached directly, not through nginx.
    pub fn direct(&self, index: usize) -> Agent {
        Agent::at(self.agents[index].url.clone(), self.did.clone())
    }

    /// The cluster reached through nginx (what phones and issuers use).
    pub fn balanced(&self) -> Agent {
        Agent::at(self.nginx.url.clone(), self.did.clone())
    }

    /// SIGKILLs agent `index` and starts it again on the same port and data folder; it comes
    /// back as the same mediator.
    pub fn kill_and_restart(&mut self, index: usize) {
        self.restart(index, AgentProcess::kill_and_restart);
    }

    /// Stops agent `index` with SIGTERM (graceful: what it took in finishes) and starts it
    /// again on the same port and data folder.
    pub fn terminate_and_restart(&mut self, index: usize) {
        self.restart(index, AgentProcess::terminate_and_restart);
    }

    fn restart(&mut self, index: usize, how: fn(AgentProcess) -> AgentProcess) {
        let agent = how(self.agents.remove(index));
        assert_eq!(
            agent.did, self.did,
            "a restarted agent is the same mediator"
        );
        self.agents.insert(index, agent);
    }

    /// Agent `index`'s `/metrics` text.
    pub async fn metrics(&self, index: usize) -> String {
        self.agents[index].metrics().await
    }
}

impl Endpoint for Cluster {
    fn url(&self) -> &str {
        &self.nginx.url
    }

    fn did(&self) -> &str {
        &self.did
    }
}

/// The deployment's key file: 32 random bytes, readable by its owner only.
fn write_key_file(path: &std::path::Path) {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key[..]))
        .expect("random bytes");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(&key[..]))
        .expect("writing the key file");
}
