//! Trains: spread along each route, one station per step, turning at the terminals as the
//! original CTA project's trains do (a train arriving at a terminal is already announced in its
//! new direction); now and then one breaks down (announced where it stands, with its previous
//! platform the same, then standing still until it is repaired). Trains
//! never leave service here, so the page always has every train to show; the status
//! `out_of_service` exists for other producers (the page does not place such a train).
//!
//! A train never enters a platform another train stands at: it holds until the platform is
//! free (as a signal would hold it), so each platform has at most one train. The first step
//! announces every train where it starts (no previous station), as the original's line does.

use crate::transit::lines::{Direction, Line};
use crate::transit::models::{train_status, Arrival};
use crate::transit::stations::Dataset;
use rand::Rng;
use std::collections::HashSet;

#[derive(Debug, Clone)]
pub struct Train {
    pub id: String,
    pub line: Line,
    pub route: usize,
    /// Position on the route's loop of `2 * (len - 1)` platforms (see [`platform`]).
    slot: usize,
    pub status: &'static str,
    prev: Option<(i32, Direction)>,
}

/// Where a train stands, as the page must show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrainPosition {
    pub train_id: String,
    pub line: Line,
    pub station_id: i32,
    pub direction: Direction,
    pub status: &'static str,
}

/// All trains of all lines.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub trains: Vec<Train>,
    /// Station ids of each route, per line.
    routes: Vec<(Line, Vec<Vec<i32>>)>,
    announced: bool,
}

/// The platform (route position, direction) of loop slot `slot` on a route of `len` stations:
/// slots `0..len-1` run in direction `b` from the first station, slots `len-1..` run back in
/// direction `a` from the last station (which a train reaches already facing `a`).
pub fn platform(slot: usize, len: usize) -> (usize, Direction) {
    let turn = len.saturating_sub(1);
    if slot < turn {
        (slot, Direction::B)
    } else {
        (2 * turn - slot, Direction::A)
    }
}

/// Number of loop slots of a route of `len` stations (0 when a train cannot move).
fn slots(len: usize) -> usize {
    2 * len.saturating_sub(1)
}

impl Fleet {
    /// `per_line` trains on each line, numbered from 1 (`BL001`...), spread evenly over each
    /// route's loop; Green trains alternate between its two branches.
    pub fn new(ds: &Dataset, per_line: usize) -> Self {
        let mut fleet = Self {
            trains: Vec::new(),
            routes: Vec::new(),
            announced: false,
        };
        for line in Line::ALL {
            let line_routes: Vec<Vec<i32>> = ds
                .routes(line)
                .iter()
                .map(|r| r.iter().map(|s| s.station_id).collect())
                .collect();
            if line_routes.is_empty() {
                continue;
            }
            fleet.routes.push((line, line_routes.clone()));
            let mut taken: HashSet<(i32, Direction)> = HashSet::new();
            for i in 0..per_line {
                let route = i % line_routes.len();
                let on_route = per_line.div_ceil(line_routes.len());
                let n = slots(line_routes[route].len()).max(1);
                let k = i / line_routes.len();
                // Evenly spaced; a platform taken by a train of another branch moves it on.
                let mut slot = (k * n) / on_route.max(1);
                for _ in 0..n {
                    let (pos, dir) = platform(slot, line_routes[route].len());
                    if taken.insert((line_routes[route][pos], dir)) {
                        break;
                    }
                    slot = (slot + 1) % n;
                }
                fleet.trains.push(Train {
                    id: format!("{}{:03}", line.train_prefix(), i + 1),
                    line,
                    route,
                    slot,
                    status: train_status::IN_SERVICE,
                    prev: None,
                });
            }
        }
        fleet
    }

    fn route(&self, line: Line, route: usize) -> &[i32] {
        self.routes
            .iter()
            .find(|(l, _)| *l == line)
            .and_then(|(_, r)| r.get(route))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn platform_of(&self, t: &Train) -> (i32, Direction) {
        let route = self.route(t.line, t.route);
        let (pos, dir) = platform(t.slot, route.len());
        (route.get(pos).copied().unwrap_or_default(), dir)
    }

    /// Where every train stands now (the ground truth the status page must show).
    pub fn positions(&self) -> Vec<TrainPosition> {
        let mut out: Vec<TrainPosition> = self
            .trains
            .iter()
            .map(|t| {
                let (station_id, direction) = self.platform_of(t);
                TrainPosition {
                    train_id: t.id.clone(),
                    line: t.line,
                    station_id,
                    direction,
                    status: t.status,
                }
            })
            .collect();
        out.sort();
        out
    }

    fn arrival(&self, t: &Train) -> Arrival {
        let (station_id, dir) = self.platform_of(t);
        Arrival {
            station_id,
            train_id: t.id.clone(),
            direction: dir.as_str().to_string(),
            line: t.line.as_str().to_string(),
            train_status: t.status.to_string(),
            prev_station_id: t.prev.map(|p| p.0),
            prev_direction: t.prev.map(|p| p.1.as_str().to_string()),
        }
    }

    /// The first call announces every train where it starts; each later call moves every
    /// running train one station (unless its next platform is taken) and returns the arrivals.
    pub fn step(&mut self, rng: &mut impl Rng) -> Vec<Arrival> {
        if !self.announced {
            self.announced = true;
            let out: Vec<Arrival> = self.trains.iter().map(|t| self.arrival(t)).collect();
            for i in 0..self.trains.len() {
                let here = self.platform_of(&self.trains[i]);
                self.trains[i].prev = Some(here);
            }
            return out;
        }
        let mut taken: HashSet<(Line, i32, Direction)> = self
            .trains
            .iter()
            .map(|t| {
                let (s, d) = self.platform_of(t);
                (t.line, s, d)
            })
            .collect();
        let mut out = Vec::with_capacity(self.trains.len());
        for i in 0..self.trains.len() {
            let next = next_status(self.trains[i].status, rng);
            if next == train_status::BROKEN_DOWN {
                if self.trains[i].status != next {
                    // Announced where it stands, so the page can show it broken down.
                    let here = self.platform_of(&self.trains[i]);
                    self.trains[i].status = next;
                    self.trains[i].prev = Some(here);
                    out.push(self.arrival(&self.trains[i]));
                }
                continue;
            }
            let t = &self.trains[i];
            let n = slots(self.route(t.line, t.route).len());
            if n == 0 {
                continue;
            }
            let here = self.platform_of(t);
            let mut moved = t.clone();
            moved.slot = (t.slot + 1) % n;
            let there = self.platform_of(&moved);
            if !taken.insert((t.line, there.0, there.1)) {
                continue; // held: the platform ahead is taken
            }
            taken.remove(&(t.line, here.0, here.1));
            moved.status = next;
            moved.prev = Some(here);
            out.push(self.arrival(&moved));
            self.trains[i] = moved;
        }
        out
    }
}

fn next_status(current: &'static str, rng: &mut impl Rng) -> &'static str {
    let x: f64 = rng.random();
    match current {
        train_status::IN_SERVICE if x < 0.01 => train_status::BROKEN_DOWN,
        train_status::BROKEN_DOWN if x < 0.3 => train_status::IN_SERVICE,
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashMap;

    #[test]
    fn the_loop_runs_b_out_and_a_back_turning_on_arrival_at_the_terminals() {
        let len = 5;
        let walk: Vec<(usize, Direction)> = (0..slots(len)).map(|s| platform(s, len)).collect();
        use Direction::{A, B};
        assert_eq!(
            walk,
            [
                (0, B),
                (1, B),
                (2, B),
                (3, B),
                (4, A),
                (3, A),
                (2, A),
                (1, A)
            ]
        );
    }

    #[test]
    fn trains_are_numbered_from_one_with_the_original_prefixes() {
        let fleet = Fleet::new(&Dataset::builtin(), 10);
        let ids: Vec<&str> = fleet.trains.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids.len(), 30);
        for want in ["BL001", "BL010", "RL001", "RL010", "GL001", "GL010"] {
            assert!(ids.contains(&want), "{want} missing from {ids:?}");
        }
        assert!(!ids.contains(&"BL000"));
    }

    /// Every arrival names the platform its train left (as the previous arrival placed it),
    /// moves one station along its route in its direction, and no two trains ever share a
    /// platform.
    #[test]
    fn arrivals_move_each_train_one_station_from_where_it_was_announced() {
        let ds = Dataset::builtin();
        let mut fleet = Fleet::new(&ds, 10);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let first = fleet.step(&mut rng);
        assert_eq!(first.len(), 30, "the first step announces every train");
        assert!(first.iter().all(|a| a.prev_station_id.is_none()));
        let mut at: HashMap<String, (i32, String)> = first
            .iter()
            .map(|a| (a.train_id.clone(), (a.station_id, a.direction.clone())))
            .collect();
        let order = |line: &str, id: i32| -> usize {
            let line: Line = line.parse().unwrap();
            ds.line(line)
                .iter()
                .find(|r| r.station_id == id)
                .map(|r| r.order as usize)
                .unwrap()
        };
        let (mut turns, mut breakdowns) = (0, 0);
        for _ in 0..400 {
            for a in fleet.step(&mut rng) {
                let (prev_id, prev_dir) = at[&a.train_id].clone();
                assert_eq!(a.prev_station_id, Some(prev_id), "{a:?}");
                assert_eq!(a.prev_direction.as_deref(), Some(prev_dir.as_str()));
                if a.train_status == train_status::BROKEN_DOWN {
                    breakdowns += 1;
                    assert_eq!((a.station_id, &a.direction), (prev_id, &prev_dir), "{a:?}");
                    continue;
                }
                let (from, to) = (order(&a.line, prev_id), order(&a.line, a.station_id));
                // Direction b runs toward increasing order; a train turns on arriving at a
                // terminal, so the step that reaches it is announced in the other direction.
                match (prev_dir.as_str(), a.direction.as_str()) {
                    ("b", "b") => assert_eq!(to, from + 1, "{a:?}"),
                    ("a", "a") => assert_eq!(to + 1, from, "{a:?}"),
                    ("b", "a") => {
                        turns += 1;
                        assert_eq!(to, from + 1, "{a:?}")
                    }
                    ("a", "b") => {
                        turns += 1;
                        assert_eq!((to, from), (1, 2), "{a:?}")
                    }
                    other => panic!("{other:?}"),
                }
                at.insert(a.train_id.clone(), (a.station_id, a.direction.clone()));
            }
            let mut platforms = HashSet::new();
            for p in fleet.positions() {
                assert_eq!(at[&p.train_id], (p.station_id, p.direction.as_str().into()));
                assert!(
                    platforms.insert((p.line, p.station_id, p.direction)),
                    "two trains at {p:?}"
                );
            }
        }
        assert!(turns > 20, "trains turned {turns} times");
        assert!(breakdowns > 10, "trains broke down {breakdowns} times");
        let branches: HashSet<usize> = fleet
            .trains
            .iter()
            .filter(|t| t.line == Line::Green)
            .map(|t| t.route)
            .collect();
        assert_eq!(branches.len(), 2, "Green trains run both branches");
    }
}
