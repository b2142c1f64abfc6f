//! A tiny HTTP stub on 127.0.0.1 for the outside systems that cannot run here (Kafka Connect,
//! REST Proxy, ksqlDB): records every request and answers with what the test's handler says.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One request as the stub received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

type Handler = dyn Fn(&Request) -> (u16, String) + Send + Sync;

pub struct Stub {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Stub {
    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts a stub whose `handler` answers (status, JSON body) for each request.
pub async fn start(handler: impl Fn(&Request) -> (u16, String) + Send + Sync + 'static) -> Stub {
    use warp::Filter;
    let handler: Arc<Handler> = Arc::new(handler);
    let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = requests.clone();
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  headers: warp::http::HeaderMap,
                  body: bytes::Bytes| {
                let req = Request {
                    method: method.to_string(),
                    path: path.as_str().to_string(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_ascii_lowercase(),
                                v.to_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect(),
                    body: body.to_vec(),
                };
                let (status, answer) = handler(&req);
                log.lock().unwrap().push(req);
                warp::http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(warp::hyper::body::Bytes::from(answer))
                    .unwrap()
            },
        )
        .boxed();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        warp::serve(route)
            .incoming(listener)
            .graceful(async move {
                let _ = rx.await;
            })
            .run()
            .await;
    });
    Stub {
        url: format!("http://{addr}"),
        requests,
        stop: Some(tx),
    }
}
