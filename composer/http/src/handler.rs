//! One request to one response: method, path policy, private files, hooks,
//! conditional requests and ranges. No socket here: the connection loop in
//! `server.rs` hands requests in.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc::UnboundedSender;

use crate::body::{FileStream, Report, ResponseBody};
use compose_confine::Confinement;

use crate::confine::{self, refuse, Opened, Refusal};
use crate::metrics::Metrics;
use crate::path::{parse_path, CacheClass};
use crate::range::{parse_range, RangeSpec};
use crate::HttpEvent;

/// A closure rendering dynamic content on each request; it runs on the
/// connection's task, so it must be quick (render a snapshot, no I/O).
pub type Hook<T> = Arc<dyn Fn() -> T + Send + Sync>;

/// Per-client files: URL path (without the leading `/`) -> the file and the
/// only address allowed to fetch it. Shared with the caller, who updates it
/// as nodes come and go.
#[derive(Clone, Default)]
pub struct PrivateFiles(Arc<RwLock<HashMap<String, (PathBuf, IpAddr)>>>);

impl PrivateFiles {
    /// Serves `file` at `url_path` (e.g. "nodes/n01/overlay.cpio") to
    /// `client` only; replaces an earlier entry for the same path.
    pub fn insert(&self, url_path: &str, file: impl Into<PathBuf>, client: IpAddr) {
        let key = url_path.trim_start_matches('/').to_owned();
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.insert(key, (file.into(), client));
    }

    pub fn remove(&self, url_path: &str) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.remove(url_path.trim_start_matches('/'));
    }

    /// Replaces every entry at once (after a cluster regen).
    pub fn replace_all(&self, entries: impl IntoIterator<Item = (String, PathBuf, IpAddr)>) {
        let new = entries
            .into_iter()
            .map(|(k, f, ip)| (k.trim_start_matches('/').to_owned(), (f, ip)))
            .collect();
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = new;
    }

    fn get(&self, key: &str) -> Option<(PathBuf, IpAddr)> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(key).cloned()
    }
}

/// Everything a request needs, shared by all connections.
pub struct Handler {
    pub confinement: Confinement,
    pub private: PrivateFiles,
    /// JSON bytes for `/status.json`.
    pub status_hook: Option<Hook<Vec<u8>>>,
    /// Prometheus text appended to the library's own in `/metrics`.
    pub metrics_hook: Option<Hook<String>>,
    pub metrics: Arc<Metrics>,
    pub events: UnboundedSender<HttpEvent>,
    pub chunk: usize,
}

type Resp = Response<ResponseBody>;

fn plain(status: u16, text: &str) -> Resp {
    let mut r = Response::new(ResponseBody::bytes(format!("{text}\n")));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl Handler {
    pub fn handle<B>(&self, req: &Request<B>, peer: SocketAddr) -> Resp {
        let started = Instant::now();
        let method = req.method().clone();
        let raw = req.uri().path().to_owned();
        let mut resp = self.route(req, peer, &raw, started);
        if method == Method::HEAD {
            // hyper sends no body for HEAD but keeps an explicit
            // Content-Length: the length the GET would have had. File
            // responses set theirs without opening a stream.
            let len = hyper::body::Body::size_hint(resp.body()).exact();
            if let Some(len) = len.filter(|&n| n > 0) {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            *resp.body_mut() = ResponseBody::Empty;
        }
        self.metrics
            .request(method.as_str(), resp.status().as_u16());
        resp
    }

    fn refused(&self, peer: SocketAddr, path: &str, r: Refusal) -> Resp {
        let _ = self.events.send(HttpEvent::Refused {
            peer,
            path: path.to_owned(),
            status: r.status,
            reason: r.reason.clone(),
        });
        plain(r.status, &r.reason)
    }

    fn finished(&self, peer: SocketAddr, path: &str, status: u16, bytes: u64, t: Instant) {
        let _ = self.events.send(HttpEvent::Finished {
            peer,
            path: path.to_owned(),
            bytes,
            status,
            elapsed: t.elapsed(),
        });
    }

    fn route<B>(&self, req: &Request<B>, peer: SocketAddr, raw: &str, t: Instant) -> Resp {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let _ = self.events.send(HttpEvent::Refused {
                peer,
                path: raw.to_owned(),
                status: 405,
                reason: format!("method {} not allowed", req.method()),
            });
            let mut r = plain(405, "only GET and HEAD");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let rel = match parse_path(raw) {
            Ok(p) => p,
            Err(e) => {
                let status = if e == crate::path::PathError::DotDot {
                    403
                } else {
                    400
                };
                return self.refused(peer, raw, refuse(status, e.to_string()));
            }
        };
        let key = rel.as_string();
        if let Some(r) = self.dynamic(&key, peer, raw, t) {
            return r;
        }
        let (opened, class) = if let Some((file, client)) = self.private.get(&key) {
            if peer.ip().to_canonical() != client.to_canonical() {
                // The event names the owner; the client learns nothing.
                let _ = self.refused(peer, raw, refuse(403, format!("private to {client}")));
                return plain(403, "private file");
            }
            match confine::open_private(&file) {
                Ok(o) => (o, CacheClass::Private),
                Err(r) => return self.refused(peer, raw, r),
            }
        } else {
            match confine::open_file(&self.confinement, &rel) {
                Ok(o) => (o, CacheClass::of(&rel)),
                Err(r) => return self.refused(peer, raw, r),
            }
        };
        let head = req.method() == Method::HEAD;
        self.file_response(req.headers(), opened, class, head, (peer, raw, t))
    }

    /// `/status.json` and `/metrics`, rendered now; None for other paths.
    fn dynamic(&self, key: &str, peer: SocketAddr, raw: &str, t: Instant) -> Option<Resp> {
        let (ctype, body) = match key {
            "status.json" => match &self.status_hook {
                Some(h) => ("application/json", h()),
                None => return Some(self.refused(peer, raw, refuse(404, "no status hook"))),
            },
            "metrics" => {
                let extra = self.metrics_hook.as_ref().map(|h| h()).unwrap_or_default();
                let text = self.metrics.render(&extra);
                (
                    "text/plain; version=0.0.4; charset=utf-8",
                    text.into_bytes(),
                )
            }
            _ => return None,
        };
        let n = body.len() as u64;
        let mut r = Response::new(ResponseBody::bytes(body));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.finished(peer, raw, 200, n, t);
        Some(r)
    }

    fn file_response(
        &self,
        headers: &HeaderMap,
        opened: Opened,
        class: CacheClass,
        head: bool,
        (peer, raw, t): (SocketAddr, &str, Instant),
    ) -> Resp {
        let Opened { file, size, etag } = opened;
        let mut r = Response::new(ResponseBody::Empty);
        let h = r.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(class.header()),
        );
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
            if etag_listed(inm, &etag) {
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                self.finished(peer, raw, 304, 0, t);
                return r;
            }
        }
        let range = headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| if_range_holds(headers, &etag))
            .map(|v| parse_range(v, size));
        let (start, end, status) = match range {
            Some(RangeSpec::Unsatisfiable) => {
                *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                let cr = format!("bytes */{size}");
                r.headers_mut()
                    .insert(header::CONTENT_RANGE, header_value(&cr));
                r.headers_mut().remove(header::CACHE_CONTROL);
                let _ = self.events.send(HttpEvent::Refused {
                    peer,
                    path: raw.to_owned(),
                    status: 416,
                    reason: format!("range not satisfiable for {size} bytes"),
                });
                return r;
            }
            Some(RangeSpec::Bytes { start, end }) => {
                let cr = format!("bytes {start}-{}/{size}", end - 1);
                r.headers_mut()
                    .insert(header::CONTENT_RANGE, header_value(&cr));
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                (start, end, 206)
            }
            Some(RangeSpec::Ignore) | None => (0, size, 200),
        };
        if head {
            let len = HeaderValue::from(end - start);
            r.headers_mut().insert(header::CONTENT_LENGTH, len);
            self.finished(peer, raw, status, 0, t);
            return r;
        }
        let report = Report {
            peer,
            path: raw.to_owned(),
            status,
            started: t,
            events: self.events.clone(),
            metrics: self.metrics.clone(),
        };
        *r.body_mut() = ResponseBody::File(Box::new(FileStream::new(
            file, start, end, self.chunk, report,
        )));
        r
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// If-None-Match uses the weak comparison (RFC 9110 13.1.2): `W/` ignored.
fn etag_listed(value: &HeaderValue, etag: &str) -> bool {
    let Ok(v) = value.to_str() else { return false };
    v.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// If-Range with a strong ETag: the range applies only while it matches.
/// A date (we send no Last-Modified) never matches: full response.
fn if_range_holds(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => v.to_str().map(str::trim).ok() == Some(etag),
    }
}
