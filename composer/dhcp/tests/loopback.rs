//! The async loop over loopback sockets: no root, no namespaces. Replies
//! that would be broadcast are redirected to the test's socket.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use compose_dhcp::{
    serve, serve_on, BootFiles, DhcpConfig, DhcpError, DhcpEvent, MessageType, Op, Packet,
    ProxyStage, Sockets, StaticLease,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];
const NODE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

fn cfg(proxy: bool) -> DhcpConfig {
    DhcpConfig {
        interface: "lo".into(),
        server_ip: Ipv4Addr::LOCALHOST,
        netmask: Ipv4Addr::new(255, 0, 0, 0),
        router: None,
        dns: vec![],
        domain: None,
        lease_secs: 600,
        leases: vec![StaticLease {
            mac: MAC,
            ip: NODE_IP,
            hostname: "n7".into(),
        }],
        boot: BootFiles {
            bios: "pxelinux.0".into(),
            efi_x64: None,
            ipxe: None,
        },
        next_server: Ipv4Addr::LOCALHOST,
        proxy,
    }
}

struct Running {
    client: UdpSocket,
    server: SocketAddr,
    pxe: Option<SocketAddr>,
    events: mpsc::UnboundedReceiver<DhcpEvent>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), DhcpError>>,
}

async fn start(proxy: bool) -> Running {
    // The client listens on the wildcard so unicasts to ciaddr (127.0.0.11) reach it.
    let client = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    let port = client.local_addr().unwrap().port();
    let dhcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = dhcp.local_addr().unwrap();
    let pxe = if proxy {
        Some(UdpSocket::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    let pxe_addr = pxe.as_ref().map(|s| s.local_addr().unwrap());
    let sockets = Sockets {
        dhcp,
        pxe,
        broadcast: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        client_port: port,
        server_port: 67,
    };
    let (tx, events) = mpsc::unbounded_channel();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_on(cfg(proxy), sockets, tx, async move {
        let _ = stop_rx.await;
    }));
    Running {
        client,
        server,
        pxe: pxe_addr,
        events,
        stop,
        task,
    }
}

impl Running {
    async fn exchange(&self, to: SocketAddr, p: &Packet) -> (Packet, SocketAddr) {
        self.client.send_to(&p.encode(), to).await.unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = timeout(Duration::from_secs(5), self.client.recv_from(&mut buf))
            .await
            .expect("reply within 5 s")
            .unwrap();
        (Packet::parse(&buf[..n]).unwrap(), from)
    }

    async fn event(&mut self) -> DhcpEvent {
        timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("event")
            .unwrap()
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        let r = timeout(Duration::from_secs(5), self.task)
            .await
            .expect("stops")
            .unwrap();
        assert!(r.is_ok(), "{r:?}");
    }
}

fn request(mt: MessageType, pxe: bool) -> Packet {
    let mut p = Packet::new(Op::BootRequest, 42, MAC);
    p.set_option(53, [mt as u8]);
    if pxe {
        p.set_option(60, b"PXEClient".as_slice());
    }
    p
}

#[tokio::test]
async fn loop_survives_garbage_answers_and_stops() {
    let mut r = start(false).await;
    let me = r.client.local_addr().unwrap().port();
    r.client.send_to(b"not dhcp", r.server).await.unwrap();
    match r.event().await {
        DhcpEvent::Malformed { from, .. } => assert_eq!(from.port(), me),
        e => panic!("{e:?}"),
    }
    let (offer, _) = r
        .exchange(r.server, &request(MessageType::Discover, false))
        .await;
    assert_eq!(
        (offer.message_type(), offer.yiaddr),
        (Some(MessageType::Offer), NODE_IP)
    );
    assert_eq!(
        r.event().await,
        DhcpEvent::Offer {
            mac: MAC,
            ip: NODE_IP
        }
    );
    // Renewing: ciaddr set, so the ACK is unicast to ciaddr:client port.
    let mut renew = request(MessageType::Request, false);
    renew.ciaddr = NODE_IP;
    let (ack, _) = r.exchange(r.server, &renew).await;
    assert_eq!(
        (ack.message_type(), ack.yiaddr),
        (Some(MessageType::Ack), NODE_IP)
    );
    assert_eq!(ack.hostname(), Some(&b"n7"[..]));
    r.stop().await;
}

#[tokio::test]
async fn proxy_loop_answers_pxe_on_both_ports() {
    let mut r = start(true).await;
    let (offer, _) = r
        .exchange(r.server, &request(MessageType::Discover, true))
        .await;
    assert_eq!(
        (offer.yiaddr, offer.file.as_slice()),
        (Ipv4Addr::UNSPECIFIED, &b"pxelinux.0"[..])
    );
    let e = r.event().await;
    assert!(
        matches!(
            e,
            DhcpEvent::ProxyBoot {
                stage: ProxyStage::Offer,
                ..
            }
        ),
        "{e:?}"
    );
    let pxe = r.pxe.unwrap();
    let (ack, from) = r.exchange(pxe, &request(MessageType::Request, true)).await;
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(from, pxe, "answered from the 4011 socket");
    let e = r.event().await;
    assert!(
        matches!(
            e,
            DhcpEvent::ProxyBoot {
                stage: ProxyStage::Ack,
                ..
            }
        ),
        "{e:?}"
    );
    r.stop().await;
}

#[tokio::test]
async fn serve_rejects_bad_config_before_binding() {
    let mut c = cfg(false);
    c.boot.bios = String::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = serve(c, tx, std::future::pending()).await.unwrap_err();
    assert!(matches!(err, DhcpError::Config(_)), "{err}");
    assert!(err.to_string().contains("boot file"), "{err}");
}
