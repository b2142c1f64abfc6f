//! Word count, Faust-style: count the records of `words` per key in a changelog-backed RocksDB
//! table, serve it on `/tables/counts`, stop on Ctrl-C. Runs against an in-process Kafka that
//! holds the words of `words.txt`; prints the table once every word is counted, then stops.
use cta_stream_core::embedded::{print_table_when, Demo};
use cta_stream_core::{view, App, Record, Shutdown};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = Demo::start("words", 3, Demo::words(include_str!("words.txt")))?;
    let mut app = App::new(demo.config("word-count"));
    let counts = app.table_on::<String, u64>("counts", "words");
    let t = counts.clone();
    let count = move |r: &Record| t.update(r, r.key_str()?.into(), |n| n.unwrap_or(0) + 1);
    app.agent_fn("words", count);
    let shutdown = Shutdown::on_ctrl_c();
    let views = counts.view(app.directory());
    let web = view::serve(views, ([127, 0, 0, 1], 0), shutdown.clone());
    let url = format!("http://{}/tables/counts", web.await?.0);
    tokio::spawn(print_table_when(url, demo.records(), shutdown.clone())); // demo only
    app.run(shutdown).await?;
    Ok(())
}
