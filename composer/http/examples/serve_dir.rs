//! Serves a directory over HTTP for manual tests and throughput figures:
//! `cargo run -p compose-http --example serve_dir -- DIR 127.0.0.1:8080`.
//! Events go to stderr as debug lines; stops on Ctrl-C.

use compose_http::{HttpConfig, HttpServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(bind)) = (args.next(), args.next()) else {
        return Err("usage: serve_dir DIR ADDR:PORT".into());
    };
    let (server, addr) = HttpServer::bind(HttpConfig::new(dir, bind.parse()?)).await?;
    eprintln!("serving on http://{addr}");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            eprintln!("{e:?}");
        }
    });
    server
        .run(tx, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
