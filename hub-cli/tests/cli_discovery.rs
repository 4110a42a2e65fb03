//! Discovery by DNS as a deployment uses it, against a real DNS server the
//! test runs on loopback (hickory-server; no mocked resolver): `hub node`
//! processes with `--discovery` and no seeds find each other as their
//! records appear, and one whose record vanished and which died is gone.

mod procs;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;
use procs::*;
use tokio::sync::RwLock;

const ZONE: &str = "hub.test.";

/// A DNS server whose zone the test replaces as nodes come and go.
#[derive(Clone)]
struct Zone(Arc<RwLock<Catalog>>);

#[async_trait::async_trait]
impl RequestHandler for Zone {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let catalog = self.0.read().await;
        catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

fn name(n: &str) -> Name {
    Name::parse(n, None).unwrap()
}

impl Zone {
    /// The zone with an SRV record and an A record per node port.
    async fn serve(&self, ports: &[u16]) {
        let origin = name(ZONE);
        let mut z = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            name("ns.hub.test."),
            name("admin.hub.test."),
            1,
            60,
            60,
            60,
            1,
        );
        z.upsert_mut(Record::from_rdata(origin.clone(), 1, RData::SOA(soa)), 0);
        for p in ports {
            let target = name(&format!("n{p}.hub.test."));
            let srv = SRV::new(0, 0, *p, target.clone());
            z.upsert_mut(
                Record::from_rdata(name("_hub._tcp.hub.test."), 1, RData::SRV(srv)),
                0,
            );
            z.upsert_mut(
                Record::from_rdata(target, 1, RData::A(A(Ipv4Addr::LOCALHOST))),
                0,
            );
        }
        self.0
            .write()
            .await
            .upsert(LowerName::new(&origin), vec![Arc::new(z)]);
    }
}

fn ring_of(addr: &str, cookie: &std::path::PathBuf) -> usize {
    status(addr, cookie)
        .and_then(|s| s["ring"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn nodes_find_each_other_as_their_srv_records_appear_and_vanish() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let zone = Zone(Arc::new(RwLock::new(Catalog::new())));
    let dns = rt.block_on(async {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut server = Server::new(zone.clone());
        server.register_socket(socket);
        tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        addr
    });

    let cookie = cookie_file("discovery");
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    let ports: Vec<u16> = addrs
        .iter()
        .map(|a| a.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let spec = format!("dns-srv:_hub._tcp.hub.test@{dns}");
    let flags = [
        "--discovery".to_string(),
        spec,
        "--discovery-interval".into(),
        "1".into(),
    ];
    // Two nodes in the answer, started without seeds.
    rt.block_on(zone.serve(&ports[..2]));
    let mut procs = Procs(
        (0..2)
            .map(|i| node_with_args(&format!("p{i}"), &addrs[i], None, &cookie, &flags))
            .collect(),
    );
    wait_ring(&addrs[..2], &cookie, 2);

    // A third appears in the answer: it and the others find each other.
    procs
        .0
        .push(node_with_args("p2", &addrs[2], None, &cookie, &flags));
    rt.block_on(zone.serve(&ports));
    wait_ring(&addrs, &cookie, 3);

    // It vanishes from the answer and dies: the others drop it.
    rt.block_on(zone.serve(&ports[..2]));
    let mut p2 = procs.0.remove(2);
    p2.kill().unwrap();
    p2.wait().unwrap();
    let dropped = eventually(Duration::from_secs(20), || {
        ring_of(&addrs[0], &cookie) == 2 && ring_of(&addrs[1], &cookie) == 2
    });
    assert!(dropped, "the vanished node left the ring");
}
