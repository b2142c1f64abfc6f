//! Clicks per user per minute: a tumbling one-minute window by event time (the record
//! timestamp), kept in a windowed table with its changelog. Runs against an in-process Kafka
//! holding `clicks.txt` (`<second> <user>` lines); prints `window-start-second user count`
//! once every click is counted, then stops.
use cta_stream_core::embedded::Demo;
use cta_stream_core::{App, Shutdown, Windows};
use std::time::Duration;

/// Event time of second 0 of `clicks.txt`: 2026-01-01T00:00:00Z.
const BASE_MS: i64 = 1_767_225_600_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clicks = Demo::timed_keys(include_str!("clicks.txt"), BASE_MS)?;
    let demo = Demo::start("clicks", 2, clicks)?;
    let mut app = App::new(demo.config("clicks-per-minute"));
    let minute = Windows::tumbling(Duration::from_secs(60)).retention(Duration::from_secs(3600));
    let per_minute = app.windowed_table_on::<String, u64>("per-minute", "clicks", minute);
    let table = per_minute.clone();
    app.agent_fn("clicks", move |r| {
        table.update(r, r.key_str()?.to_string(), |n| n.unwrap_or(0) + 1)
    });
    let shutdown = Shutdown::on_ctrl_c();
    let total = demo.records();
    demo.stop_when(shutdown.clone(), Duration::from_secs(60), move || {
        let windows = per_minute.items().unwrap_or_default();
        let done = windows.iter().map(|(_, n)| n).sum::<u64>() == total;
        if done {
            let mut lines: Vec<_> = windows
                .iter()
                .map(|(w, n)| ((w.start - BASE_MS) / 1000, &w.key, n))
                .collect();
            lines.sort();
            for (start, user, n) in lines {
                println!("{start} {user} {n}");
            }
        }
        done
    });
    app.run(shutdown).await?;
    Ok(())
}
