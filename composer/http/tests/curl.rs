//! The file-serving behaviour, seen by curl on loopback.

mod common;

use common::{curl, start, tree};
use compose_http::HttpEvent;

#[test]
fn get_head_and_ranges() {
    let t = tree();
    let s = start(&t, |_| {});
    let k = &t.kernel;
    let n = k.len();
    let url = s.url("/images/img/gen/1/vmlinuz");

    let g = curl(&[&url]);
    assert_eq!(g.status, 200);
    assert_eq!(g.body, *k, "whole file, several chunks");
    assert_eq!(g.header("content-length"), Some(n.to_string().as_str()));
    assert_eq!(g.header("accept-ranges"), Some("bytes"));
    s.wait_event(
        |e| matches!(e, HttpEvent::Finished { status: 200, bytes, .. } if *bytes == n as u64),
    );

    let h = curl(&["-I", &url]);
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some(n.to_string().as_str()));
    // curl -I writes the headers to -o too: a head, no kernel bytes.
    assert!(h.body.starts_with(b"HTTP/1.1 200") && h.body.len() < 1024);
    // The next event is the HEAD's: finished, nothing sent, no stream opened
    // (an opened-then-dropped stream would report Failed first).
    let e = s.wait_event(|_| true);
    assert!(
        matches!(
            e,
            HttpEvent::Finished {
                status: 200,
                bytes: 0,
                ..
            }
        ),
        "{e:?}"
    );

    let cases: &[(&str, usize, usize)] = &[("0-99", 0, 100), ("100-", 100, n), ("-10", n - 10, n)];
    for &(r, a, b) in cases {
        let g = curl(&["-r", r, &url]);
        assert_eq!(g.status, 206, "{r}");
        assert_eq!(g.body, k[a..b], "{r}");
        let cr = format!("bytes {a}-{}/{n}", b - 1);
        assert_eq!(g.header("content-range"), Some(cr.as_str()), "{r}");
        assert_eq!(
            g.header("content-length"),
            Some((b - a).to_string().as_str())
        );
    }

    let g = curl(&["-r", &format!("{n}-"), &url]);
    assert_eq!(g.status, 416);
    assert_eq!(
        g.header("content-range"),
        Some(format!("bytes */{n}").as_str())
    );
    s.wait_event(|e| matches!(e, HttpEvent::Refused { status: 416, .. }));

    // Several ranges are not honoured: the whole file, 200.
    let g = curl(&["-r", "0-1,5-6", &url]);
    assert_eq!((g.status, g.body.len()), (200, n));
}

#[test]
fn etags_and_cache_control() {
    let t = tree();
    let s = start(&t, |_| {});
    let gen = s.url("/images/img/gen/1/vmlinuz");
    let g = curl(&["-I", &gen]);
    assert_eq!(
        g.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let etag = g.header("etag").expect("an ETag").to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );

    let g = curl(&["-H", &format!("If-None-Match: {etag}"), &gen]);
    assert_eq!(g.status, 304);
    assert!(g.body.is_empty());
    assert_eq!(g.header("etag"), Some(etag.as_str()));
    let g = curl(&[
        "-H",
        "If-None-Match: \"other\", W/".to_owned().as_str(),
        &gen,
    ]);
    assert_eq!(g.status, 200);
    let g = curl(&["-H", &format!("If-None-Match: \"x\", W/{etag}"), &gen]);
    assert_eq!(g.status, 304, "weak comparison for If-None-Match");

    // If-Range: the range only while the validator matches.
    let g = curl(&["-r", "0-9", "-H", &format!("If-Range: {etag}"), &gen]);
    assert_eq!((g.status, g.body.len()), (206, 10));
    let g = curl(&["-r", "0-9", "-H", "If-Range: \"stale\"", &gen]);
    assert_eq!((g.status, g.body.len()), (200, t.kernel.len()));

    for path in [
        "/images/img/current/vmlinuz",
        "/pxelinux.cfg/default",
        "/pxelinux.0",
    ] {
        let g = curl(&["-I", &s.url(path)]);
        assert_eq!(g.status, 200, "{path}");
        assert_eq!(g.header("cache-control"), Some("no-cache"), "{path}");
    }
    // The same file by its generation and its `current` path: one ETag.
    let cur = curl(&["-I", &s.url("/images/img/current/vmlinuz")]);
    assert_eq!(cur.header("etag"), Some(etag.as_str()));
    let cfg = curl(&[&s.url("/pxelinux.cfg/default")]);
    assert_eq!(cfg.body, b"DEFAULT linux\n");
}

#[test]
fn keep_alive_reuses_the_connection() {
    let t = tree();
    let s = start(&t, |_| {});
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-w", "%{num_connects}\n"]);
    for path in [
        "/pxelinux.0",
        "/images/img/gen/1/vmlinuz",
        "/pxelinux.cfg/default",
    ] {
        cmd.args(["-o", "/dev/null", &s.url(path)]);
    }
    let out = cmd.output().unwrap();
    let written = String::from_utf8_lossy(&out.stdout);
    assert_eq!(written, "1\n0\n0\n", "one connection for three requests");
}

#[test]
fn escapes_and_bad_requests_are_refused() {
    let t = tree();
    let s = start(&t, |_| {});
    let cases: &[(&str, u16)] = &[
        ("/../roots/abc/etc/shadow", 403),
        ("/images/../../roots/abc/etc/shadow", 403),
        ("/%2e%2e/roots/abc/etc/shadow", 403),
        ("/images/img/gen/1/%2E%2E/%2e%2e/%2E%2e/%2e%2e/roots", 403),
        ("/images%2Fimg%2Fgen%2F1%2Fvmlinuz", 400),
        ("/pxelinux.0%00", 400),
        ("/%ff", 400),
        ("/passwd", 403), // -> /etc/passwd
        ("/shadow", 403), // -> ../roots/...: inside the tree, not served
        ("/secret", 403), // 0600
        ("/images", 403), // a directory
        ("/", 404),
        ("/missing", 404),
        ("/cluster/boot/n1/overlay.cpio", 404),
    ];
    for &(path, want) in cases {
        let g = curl(&["--path-as-is", &s.url(path)]);
        assert_eq!(g.status, want, "{path}");
        assert_ne!(g.body, b"root:x", "{path}");
        s.wait_event(|e| matches!(e, HttpEvent::Refused { path: p, status, .. } if p == path && *status == want));
    }
    let g = curl(&["-X", "POST", "-d", "x", &s.url("/pxelinux.0")]);
    assert_eq!(g.status, 405);
    assert_eq!(g.header("allow"), Some("GET, HEAD"));
}

#[test]
fn private_files_only_to_their_node() {
    let t = tree();
    let s = start(&t, |_| {});
    let overlay = t.top().join("cluster/boot/n1/overlay.cpio");
    s.private.insert(
        "/nodes/n1/overlay.cpio",
        &overlay,
        "127.0.0.1".parse().unwrap(),
    );
    let url = s.url("/nodes/n1/overlay.cpio");
    let g = curl(&["--interface", "127.0.0.1", &url]);
    assert_eq!(g.status, 200);
    assert_eq!(
        g.body, b"overlay of n1",
        "0600 is fine: the address is the check"
    );
    assert_eq!(g.header("cache-control"), Some("private, no-cache"));

    let g = curl(&["--interface", "127.0.0.2", &url]);
    assert_eq!(g.status, 403);
    assert_eq!(g.body, b"private file\n", "no word of whose");
    let e = s.wait_event(|e| matches!(e, HttpEvent::Refused { status: 403, .. }));
    let HttpEvent::Refused { peer, reason, .. } = e else {
        unreachable!()
    };
    assert_eq!(peer.ip().to_string(), "127.0.0.2");
    assert_eq!(reason, "private to 127.0.0.1");

    // Moved to the other address, then removed.
    s.private.insert(
        "nodes/n1/overlay.cpio",
        &overlay,
        "127.0.0.2".parse().unwrap(),
    );
    assert_eq!(curl(&["--interface", "127.0.0.2", &url]).status, 200);
    assert_eq!(curl(&["--interface", "127.0.0.1", &url]).status, 403);
    s.private.remove("nodes/n1/overlay.cpio");
    assert_eq!(curl(&["--interface", "127.0.0.2", &url]).status, 404);
}

#[test]
fn metrics_parse_and_status_hook() {
    let t = tree();
    let s = start(&t, |_| {});
    assert_eq!(curl(&[&s.url("/pxelinux.0")]).status, 200);
    assert_eq!(curl(&[&s.url("/missing")]).status, 404);
    let st = curl(&[&s.url("/status.json")]);
    assert_eq!(st.status, 200);
    assert_eq!(st.header("content-type"), Some("application/json"));
    assert_eq!(st.body, br#"{"nodes":1}"#);

    let m = curl(&[&s.url("/metrics")]);
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition text");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("{name} {labels:?} in\n{text}"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name}: unexpected type"),
        }
    };
    let get200 = value(
        "compose_http_requests_total",
        &[("method", "GET"), ("status", "200")],
    );
    assert!(get200 >= 2.0, "pxelinux.0 and status.json: {get200}");
    let get404 = value(
        "compose_http_requests_total",
        &[("method", "GET"), ("status", "404")],
    );
    assert_eq!(get404, 1.0);
    assert!(value("compose_http_sent_bytes_total", &[]) >= 6.0);
    assert_eq!(
        value("compose_http_connections_active", &[]),
        1.0,
        "this one"
    );
    assert_eq!(
        value("compose_nodes", &[]),
        3.0,
        "the caller's text, merged"
    );
}

#[test]
fn parallel_downloads_are_all_whole() {
    let t = tree();
    let s = start(&t, |c| c.chunk = 64 * 1024);
    let url = s.url("/images/img/gen/1/vmlinuz");
    let got: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let url = &url;
                scope.spawn(move || {
                    // Every third one a range, so streams of different
                    // lengths share the runtime.
                    if i % 3 == 0 {
                        curl(&["-r", "1000-", url]).body
                    } else {
                        curl(&[url]).body
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, body) in got.iter().enumerate() {
        let want = if i % 3 == 0 {
            &t.kernel[1000..]
        } else {
            &t.kernel[..]
        };
        assert!(body == want, "download {i}: {} bytes", body.len());
    }
}

#[test]
fn ipv6_loopback_and_private_files() {
    let t = tree();
    let s = start(&t, |c| c.bind = "[::1]:0".parse().unwrap());
    let overlay = t.top().join("cluster/boot/n1/overlay.cpio");
    s.private
        .insert("nodes/n1/overlay.cpio", &overlay, "::1".parse().unwrap());
    let g = curl(&["-g", &s.url("/nodes/n1/overlay.cpio")]);
    assert_eq!((g.status, g.body.as_slice()), (200, &b"overlay of n1"[..]));
    assert_eq!(curl(&["-g", &s.url("/pxelinux.0")]).status, 200);
}
