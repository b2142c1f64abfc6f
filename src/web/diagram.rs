//! The live line diagram: one inline SVG per line, laid out here (positions, paths, labels)
//! so the server renders it complete, without JavaScript, and the page's event stream carries
//! the same model for `static/live.js` to redraw in place.
//!
//! Stations run top to bottom in route order (direction `a` is up, toward the first station;
//! `b` is down). A line with branches (the Green line) draws its trunk and first branch on one
//! spine and each further branch on a spine of its own, forking from the trunk's last station.
//! Each train is a triangle beside its platform, pointing its way: direction `a` markers left
//! of the spine pointing up, `b` markers right of it pointing down. Beside each station, a
//! sparkline of its entries per hour over the last 24 hourly windows.
//!
//! Owns layout only: which train stands where comes from `transit::queries` (placed from the
//! trains' latest arrivals); the markup is `templates/status.html` and `static/live.js`.

use crate::transit::lines::Line;
use crate::transit::queries::{LineStatus, StationStatus};
use crate::transit::stations::Dataset;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Width of every diagram's view box; the page scales it to the screen.
pub const WIDTH: i32 = 360;
const ROW: i32 = 22;
const TOP: i32 = 14;
const SPINE_X: i32 = 30;
/// Distance between two branches' spines.
const BRANCH_DX: i32 = 28;
/// Distance of a train marker from its spine.
const MARKER_DX: i32 = 11;
const NAME_DX: i32 = 30;
const SPARK_X: i32 = 272;
const SPARK_W: i32 = 80;
const SPARK_H: i32 = 14;
/// Hourly windows a sparkline shows.
pub const SPARK_HOURS: i64 = 24;
const HOUR_MS: i64 = 3_600_000;

/// One line's diagram.
#[derive(Debug, Clone, Serialize)]
pub struct Diagram {
    pub width: i32,
    pub height: i32,
    /// SVG path data of each spine (trunk first).
    pub spines: Vec<String>,
    pub stations: Vec<StationDot>,
    pub trains: Vec<TrainMarker>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StationDot {
    pub station_id: i32,
    pub name: String,
    pub x: i32,
    pub y: i32,
    pub r: i32,
    pub name_x: i32,
    /// Baseline of the name.
    pub name_y: i32,
    /// Polyline points of the sparkline (empty before the first hourly window).
    pub spark: String,
    /// Tooltip of the sparkline.
    pub spark_title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainMarker {
    pub train_id: String,
    pub station_id: i32,
    pub direction: String,
    pub x: i32,
    pub y: i32,
    /// Triangle path, pointing up (`a`) or down (`b`), around the marker's origin.
    pub shape: &'static str,
    /// CSS class of the status (`ok`, `broken`).
    pub css: &'static str,
    /// Tooltip: train, status, station and direction.
    pub label: String,
}

const UP: &str = "M0,-6L5,4L-5,4Z";
const DOWN: &str = "M0,6L5,-4L-5,-4Z";

/// Which spine each station of the built-in dataset is drawn on: 0 for the trunk and the first
/// branch, `i` for the `i`-th further branch. Station rows from Kafka carry no branch, so the
/// layout takes it from the dataset the simulation and `load_stations.sql` are made of; a
/// station it does not know is drawn on the trunk.
fn branch_spines() -> &'static HashMap<(Line, i32), usize> {
    static SPINES: OnceLock<HashMap<(Line, i32), usize>> = OnceLock::new();
    SPINES.get_or_init(|| {
        let ds = Dataset::builtin();
        let mut out = HashMap::new();
        for line in Line::ALL {
            let routes = ds.routes(line);
            for (i, route) in routes.iter().enumerate() {
                for r in route {
                    let on_all = routes
                        .iter()
                        .all(|o| o.iter().any(|s| s.station_id == r.station_id));
                    out.entry((line, r.station_id))
                        .or_insert(if on_all { 0 } else { i });
                }
            }
        }
        out
    })
}

fn spark(st: &StationStatus, latest_hour: Option<i64>, peak: i64, y: i32) -> (String, String) {
    let Some(last) = latest_hour else {
        return (String::new(), "no hourly counts yet".into());
    };
    let first = last - (SPARK_HOURS - 1) * HOUR_MS;
    let by_start: HashMap<i64, i64> = st.hourly.iter().copied().collect();
    let counts: Vec<i64> = (0..SPARK_HOURS)
        .map(|h| by_start.get(&(first + h * HOUR_MS)).copied().unwrap_or(0))
        .collect();
    let points = counts
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let x = SPARK_X as f64 + i as f64 * SPARK_W as f64 / (SPARK_HOURS - 1) as f64;
            let base = (y + SPARK_H / 2) as f64;
            let h = if peak > 0 {
                n as f64 * SPARK_H as f64 / peak as f64
            } else {
                0.0
            };
            format!("{x:.1},{:.1}", base - h)
        })
        .collect::<Vec<_>>()
        .join(" ");
    let max = counts.iter().copied().max().unwrap_or(0);
    let title = format!(
        "{}: entries per hour, last 24 h (peak {max}, this hour {})",
        st.station_name,
        counts.last().copied().unwrap_or(0)
    );
    (points, title)
}

/// Lays out one line: stations in route order (trunk, then each branch), spines, markers of
/// the trains standing at its platforms, sparklines scaled to the line's busiest hour.
pub fn layout(line: &LineStatus, latest_hour: Option<i64>) -> Diagram {
    let rows = station_rows(line);
    let peak = busiest_hour(line);
    let mut stations = Vec::with_capacity(rows.len());
    let mut trains = Vec::new();
    let mut spine_points: Vec<Vec<(i32, i32)>> = Vec::new();
    let last_order = line.stations.iter().map(|s| s.order).max().unwrap_or(0);
    for (row, (spine, st)) in rows.iter().enumerate() {
        let x = SPINE_X + *spine as i32 * BRANCH_DX;
        let y = TOP + row as i32 * ROW;
        if spine_points.len() <= *spine {
            spine_points.resize(*spine + 1, Vec::new());
        }
        if *spine > 0 && spine_points[*spine].is_empty() {
            if let Some((jx, jy)) = junction(&rows, st) {
                spine_points[*spine].push((jx, jy));
                spine_points[*spine].push((x, jy + ROW / 2));
            }
        }
        spine_points[*spine].push((x, y));
        let (spark, spark_title) = spark(st, latest_hour, peak, y);
        let terminal = st.order == 1 || st.order == last_order || is_branch_end(&rows, row);
        stations.push(StationDot {
            station_id: st.station_id,
            name: st.station_name.clone(),
            x,
            y,
            r: if terminal { 5 } else { 4 },
            name_x: x + NAME_DX,
            name_y: y + 4,
            spark,
            spark_title,
        });
        trains.extend(train_markers(st, x, y));
    }
    Diagram {
        width: WIDTH,
        height: TOP + rows.len() as i32 * ROW,
        spines: spine_paths(&spine_points),
        stations,
        trains,
    }
}

/// The line's stations with the spine each is drawn on: trunk and first branch in order, then
/// each further branch in order.
fn station_rows(line: &LineStatus) -> Vec<(usize, &StationStatus)> {
    let spines_of = branch_spines();
    let spine_of = |s: &StationStatus| spines_of.get(&(line.line, s.station_id)).copied();
    let mut rows: Vec<(usize, &StationStatus)> = line
        .stations
        .iter()
        .map(|s| (spine_of(s).unwrap_or(0), s))
        .collect();
    rows.sort_by(|a, b| {
        (a.0, a.1.order, &a.1.station_name).cmp(&(b.0, b.1.order, &b.1.station_name))
    });
    rows
}

/// The most entries any station of the line had in one hour; sparklines are scaled to it.
fn busiest_hour(line: &LineStatus) -> i64 {
    line.stations
        .iter()
        .flat_map(|s| s.hourly.iter().map(|(_, n)| *n))
        .max()
        .unwrap_or(0)
}

/// Where a branch forks: the trunk's station just before the branch's first one, `st`.
fn junction(rows: &[(usize, &StationStatus)], st: &StationStatus) -> Option<(i32, i32)> {
    rows.iter()
        .enumerate()
        .rfind(|(_, (sp, s))| *sp == 0 && s.order < st.order)
        .map(|(r, _)| (SPINE_X, TOP + r as i32 * ROW))
}

/// Markers of the trains standing at `st` (drawn at `x`, `y`): direction `a` left of the
/// spine pointing up, `b` right of it pointing down.
fn train_markers(st: &StationStatus, x: i32, y: i32) -> Vec<TrainMarker> {
    let mut trains = Vec::new();
    for (t, dx, shape) in [
        (&st.direction_a, -MARKER_DX, UP),
        (&st.direction_b, MARKER_DX, DOWN),
    ] {
        let Some(t) = t else { continue };
        let toward = if t.direction == "a" {
            "toward the first station"
        } else {
            "toward the last station"
        };
        trains.push(TrainMarker {
            train_id: t.train_id.clone(),
            station_id: st.station_id,
            direction: t.direction.clone(),
            x: x + dx,
            y,
            shape,
            css: status_css(&t.train_status),
            label: format!(
                "{} ({}{}) at {}, direction {} ({toward})",
                t.train_id,
                t.train_status.replace('_', " "),
                if t.not_reporting {
                    ", not reporting"
                } else {
                    ""
                },
                // The name the arrival was joined with; the platform's own before the join.
                t.station_name.as_deref().unwrap_or(&st.station_name),
                t.direction
            ),
        });
    }
    trains
}

/// SVG path data of each spine that has at least two points.
fn spine_paths(spine_points: &[Vec<(i32, i32)>]) -> Vec<String> {
    spine_points
        .iter()
        .filter(|p| p.len() > 1)
        .map(|p| {
            p.iter()
                .enumerate()
                .map(|(i, (x, y))| format!("{}{x},{y}", if i == 0 { "M" } else { "L" }))
                .collect::<String>()
        })
        .collect()
}

/// The last station of a branch (the next row is on another spine, or there is none).
fn is_branch_end(rows: &[(usize, &StationStatus)], row: usize) -> bool {
    rows[row].0 > 0 && rows.get(row + 1).is_none_or(|next| next.0 != rows[row].0)
        || rows[row].0 == 0
            && rows.iter().any(|(sp, _)| *sp > 0)
            && rows.get(row + 1).is_some_and(|next| next.0 != 0)
}

/// CSS class of a train status.
pub fn status_css(status: &str) -> &'static str {
    match status {
        "in_service" => "ok",
        "broken_down" => "broken",
        _ => "out",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transit::models::TrainSighting;

    fn line_status(line: Line, trains: &[(&str, i32, &str, &str)]) -> LineStatus {
        let ds = Dataset::builtin();
        let stations = ds
            .line(line)
            .iter()
            .map(|r| StationStatus {
                station_id: r.station_id,
                station_name: r.station_name.clone(),
                order: r.order as i32,
                direction_a: None,
                direction_b: None,
                entries: 0,
                entries_this_hour: 0,
                hourly: vec![(0, 1), (3_600_000, i64::from(r.order))],
            })
            .collect();
        let mut status = LineStatus {
            line,
            title: line.title().into(),
            color: line.color().into(),
            stations,
            trains: trains
                .iter()
                .map(|&(id, at, dir, st)| TrainSighting {
                    train_id: id.into(),
                    line: line.as_str().into(),
                    station_id: at,
                    direction: dir.into(),
                    train_status: st.into(),
                    timestamp: 1,
                    not_reporting: false,
                    station_name: None,
                    order: None,
                })
                .collect(),
        };
        crate::transit::queries::place_trains(&mut status);
        status
    }

    #[test]
    fn the_green_line_forks_after_garfield_into_two_branches() {
        let d = layout(&line_status(Line::Green, &[]), Some(3_600_000));
        assert_eq!(d.stations.len(), 31);
        assert_eq!(d.spines.len(), 2, "{:?}", d.spines);
        let at = |name: &str| d.stations.iter().find(|s| s.name == name).unwrap();
        let (garfield, king) = (at("Garfield"), at("King Drive"));
        assert_eq!(
            at("Halsted").x,
            garfield.x,
            "the first branch continues the trunk"
        );
        assert!(king.x > garfield.x, "the second branch has its own spine");
        assert!(
            d.spines[1].starts_with(&format!("M{},{}", garfield.x, garfield.y)),
            "it forks at Garfield: {}",
            d.spines[1]
        );
        for end in ["Harlem/Lake", "Ashland/63rd", "Cottage Grove"] {
            assert_eq!(at(end).r, 5, "{end} is drawn as a terminal");
        }
        assert_eq!(at("Garfield").r, 4);
    }

    #[test]
    fn markers_stand_at_their_platform_pointing_their_way() {
        let s = line_status(
            Line::Blue,
            &[
                ("BL001", 40890, "b", "in_service"),
                ("BL002", 40820, "a", "broken_down"),
                ("BL003", 40230, "a", "out_of_service"),
            ],
        );
        let d = layout(&s, Some(3_600_000));
        let ids: Vec<&str> = d.trains.iter().map(|t| t.train_id.as_str()).collect();
        assert_eq!(ids, ["BL001", "BL002"], "out of service: no marker");
        let dot = |id: i32| d.stations.iter().find(|s| s.station_id == id).unwrap();
        let (b, a) = (&d.trains[0], &d.trains[1]);
        assert_eq!(
            (b.x > dot(40890).x, b.y, b.shape),
            (true, dot(40890).y, DOWN)
        );
        assert_eq!((a.x < dot(40820).x, a.y, a.shape), (true, dot(40820).y, UP));
        assert_eq!((b.css, a.css), ("ok", "broken"));
        // Sparklines scale to the line's busiest hour: the last station's last point is at
        // the top of its box.
        let last = d.stations.last().unwrap();
        let top = format!("{:.1}", (last.y + SPARK_H / 2 - SPARK_H) as f64);
        assert!(last.spark.ends_with(&top), "{} vs {top}", last.spark);
    }
}
