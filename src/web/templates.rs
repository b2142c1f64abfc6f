//! Askama view models (HTML in `templates/`). Values are pre-formatted here so the template
//! only lays them out; askama escapes every value. The same models, as JSON, feed the page's
//! live updates (`/api/events`), where `static/live.js` writes them as text only.

use crate::transit::models::TrainSighting;
use crate::transit::queries::TransitStatus;
use askama::Template;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct TrainCell {
    pub train_id: String,
    pub status: String,
    pub css: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct StationRowView {
    pub station_id: i32,
    pub name: String,
    pub a: Option<TrainCell>,
    pub b: Option<TrainCell>,
    pub entries: i64,
    pub this_hour: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LineView {
    pub slug: &'static str,
    pub title: String,
    pub color: String,
    pub stations: Vec<StationRowView>,
    pub trains: usize,
}

#[derive(Template, Serialize)]
#[template(path = "status.html")]
pub struct StatusPage {
    pub weather: Option<String>,
    pub recovering: Option<String>,
    /// Set while the brokers do not answer: the figures are the last ones received.
    pub stale: Option<String>,
    pub lines: Vec<LineView>,
    pub total_entries: i64,
    pub consumed: u64,
    pub skipped: u64,
}

fn cell(t: &Option<TrainSighting>) -> Option<TrainCell> {
    t.as_ref().map(|t| TrainCell {
        train_id: t.train_id.clone(),
        status: t.train_status.replace('_', " "),
        css: match t.train_status.as_str() {
            "in_service" => "ok",
            "broken_down" => "broken",
            _ => "out",
        },
    })
}

impl StatusPage {
    pub fn from_status(s: &TransitStatus) -> Self {
        let w = &s.worker;
        let recovering = w.recovering.then(|| {
            format!(
                "Recovering tables from their changelogs: {} of {} records restored.",
                w.restore_done, w.restore_total
            )
        });
        let stale = w.stale_since_ms.map(|since| {
            let at = chrono::DateTime::from_timestamp_millis(since)
                .map(|t| t.format("%H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "a while".into());
            format!(
                "Stale data: Kafka has not answered since {at}. These figures are the last received and catch up when it is back."
            )
        });
        Self {
            weather: s
                .weather
                .map(|w| format!("{:.1} °F, {}", w.temperature, w.status.label())),
            recovering,
            stale,
            lines: s
                .lines
                .iter()
                .map(|l| LineView {
                    slug: l.line.as_str(),
                    title: l.title.clone(),
                    color: l.color.clone(),
                    trains: l.trains.len(),
                    stations: l
                        .stations
                        .iter()
                        .map(|st| StationRowView {
                            station_id: st.station_id,
                            name: st.station_name.clone(),
                            a: cell(&st.direction_a),
                            b: cell(&st.direction_b),
                            entries: st.entries,
                            this_hour: st.entries_this_hour,
                        })
                        .collect(),
                })
                .collect(),
            total_entries: s.total_entries,
            consumed: w.consumed,
            skipped: w.decode_errors,
        }
    }
}
