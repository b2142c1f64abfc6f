//! Askama view models (HTML in `templates/`). Values are pre-formatted here so the template
//! only lays them out; askama escapes every value. The same models, as JSON, feed the page's
//! live updates (`/api/events`), where `static/live.js` writes them as text only.

use crate::transit::models::TrainSighting;
use crate::transit::queries::TransitStatus;
use crate::web::diagram::{self, Diagram};
use askama::Template;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct TrainCell {
    pub train_id: String,
    /// The status as shown, with ", not reporting" when the train has not reported for 15
    /// simulated minutes.
    pub status: String,
    pub css: &'static str,
    pub not_reporting: bool,
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
    /// Trains standing at the line's platforms (out-of-service trains are not shown).
    pub trains: usize,
    /// Where direction `a` runs: toward the line's first station.
    pub toward_a: String,
    /// Where direction `b` runs: toward the station(s) of the highest order.
    pub toward_b: String,
    pub diagram: Diagram,
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
    t.as_ref().map(|t| {
        let mut status = t.train_status.replace('_', " ");
        if t.not_reporting {
            status.push_str(", not reporting");
        }
        TrainCell {
            train_id: t.train_id.clone(),
            status,
            css: diagram::status_css(&t.train_status),
            not_reporting: t.not_reporting,
        }
    })
}

/// The names of a line's ends: (first station, the station(s) of the highest order).
fn termini(l: &crate::transit::queries::LineStatus) -> (String, String) {
    let first = l.stations.iter().min_by_key(|s| s.order);
    let last_order = l.stations.iter().map(|s| s.order).max();
    let last: Vec<&str> = l
        .stations
        .iter()
        .filter(|s| Some(s.order) == last_order)
        .map(|s| s.station_name.as_str())
        .collect();
    (
        first.map(|s| s.station_name.clone()).unwrap_or_default(),
        last.join(" & "),
    )
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
                .map(|l| {
                    let diagram = diagram::layout(l, s.latest_hour);
                    let (toward_a, toward_b) = termini(l);
                    LineView {
                        toward_a,
                        toward_b,
                        slug: l.line.as_str(),
                        title: l.title.clone(),
                        color: l.color.clone(),
                        trains: diagram.trains.len(),
                        diagram,
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
                    }
                })
                .collect(),
            total_entries: s.total_entries,
            consumed: w.consumed,
            skipped: w.decode_errors,
        }
    }
}
