//! Trains: spread along each route, both directions, one station per step, turning back at
//! the terminals; now and then one breaks down (stands still) or runs out of service.

use crate::transit::lines::{Direction, Line};
use crate::transit::models::{train_status, Arrival};
use crate::transit::stations::Dataset;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct Train {
    pub id: String,
    pub line: Line,
    pub route: usize,
    pub position: usize,
    pub direction: Direction,
    pub status: &'static str,
    prev: Option<(i32, Direction)>,
}

/// All trains of all lines.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub trains: Vec<Train>,
    /// Station ids of each route, per line.
    routes: Vec<(Line, Vec<Vec<i32>>)>,
}

impl Fleet {
    pub fn new(ds: &Dataset, per_line: usize) -> Self {
        let mut trains = Vec::new();
        let mut routes = Vec::new();
        for line in Line::ALL {
            let line_routes: Vec<Vec<i32>> = ds
                .routes(line)
                .iter()
                .map(|r| r.iter().map(|s| s.station_id).collect())
                .collect();
            if line_routes.is_empty() {
                continue;
            }
            for i in 0..per_line {
                let route = i % line_routes.len();
                let len = line_routes[route].len();
                // Spread evenly; alternate directions so both platforms see trains.
                let position = (i * len) / per_line.max(1);
                let direction = if i % 2 == 0 {
                    Direction::A
                } else {
                    Direction::B
                };
                trains.push(Train {
                    id: format!("{}{:03}", line.train_prefix(), i),
                    line,
                    route,
                    position: position.min(len - 1),
                    direction,
                    status: train_status::IN_SERVICE,
                    prev: None,
                });
            }
            routes.push((line, line_routes));
        }
        Self { trains, routes }
    }

    fn route(&self, line: Line, route: usize) -> &[i32] {
        self.routes
            .iter()
            .find(|(l, _)| *l == line)
            .map(|(_, r)| r[route].as_slice())
            .unwrap_or(&[])
    }

    /// Moves every running train one station and returns their arrivals.
    pub fn step(&mut self, rng: &mut impl Rng) -> Vec<Arrival> {
        let mut out = Vec::with_capacity(self.trains.len());
        for i in 0..self.trains.len() {
            let (line, route_idx) = (self.trains[i].line, self.trains[i].route);
            let len = self.route(line, route_idx).len();
            let train = &mut self.trains[i];
            train.status = next_status(train.status, rng);
            if train.status == train_status::BROKEN_DOWN || len < 2 {
                continue;
            }
            let (pos, dir) = advance(train.position, train.direction, len);
            train.position = pos;
            train.direction = dir;
            let station_id = self.route(line, route_idx)[pos];
            let train = &mut self.trains[i];
            out.push(Arrival {
                station_id,
                train_id: train.id.clone(),
                direction: dir.as_str().to_string(),
                line: line.as_str().to_string(),
                train_status: train.status.to_string(),
                prev_station_id: train.prev.map(|p| p.0),
                prev_direction: train.prev.map(|p| p.1.as_str().to_string()),
            });
            train.prev = Some((station_id, dir));
        }
        out
    }
}

/// One station along `dir`, turning back at either end of a route of `len` stations.
pub fn advance(pos: usize, dir: Direction, len: usize) -> (usize, Direction) {
    match dir {
        Direction::A if pos + 1 < len => (pos + 1, Direction::A),
        Direction::A => (pos.saturating_sub(1), Direction::B),
        Direction::B if pos > 0 => (pos - 1, Direction::B),
        Direction::B => ((1).min(len - 1), Direction::A),
    }
}

fn next_status(current: &'static str, rng: &mut impl Rng) -> &'static str {
    let x: f64 = rng.random();
    match current {
        train_status::IN_SERVICE if x < 0.01 => train_status::BROKEN_DOWN,
        train_status::IN_SERVICE if x < 0.015 => train_status::OUT_OF_SERVICE,
        train_status::BROKEN_DOWN if x < 0.3 => train_status::IN_SERVICE,
        train_status::OUT_OF_SERVICE if x < 0.2 => train_status::IN_SERVICE,
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn trains_turn_back_at_both_ends() {
        assert_eq!(advance(3, Direction::A, 5), (4, Direction::A));
        assert_eq!(advance(4, Direction::A, 5), (3, Direction::B));
        assert_eq!(advance(0, Direction::B, 5), (1, Direction::A));
        assert_eq!(advance(1, Direction::B, 5), (0, Direction::B));
    }

    #[test]
    fn fleet_moves_one_station_per_step_along_the_route() {
        let ds = Dataset::builtin();
        let mut fleet = Fleet::new(&ds, 10);
        assert_eq!(fleet.trains.len(), 30);
        assert!(
            fleet.trains.iter().any(|t| t.id == "BL000")
                && fleet.trains.iter().any(|t| t.id == "GN009")
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut last: std::collections::HashMap<String, (usize, usize)> = Default::default();
        for _ in 0..200 {
            let before: Vec<(String, usize, &'static str)> = fleet
                .trains
                .iter()
                .map(|t| (t.id.clone(), t.position, t.status))
                .collect();
            let arrivals = fleet.step(&mut rng);
            for (id, pos, _) in &before {
                let t = fleet.trains.iter().find(|t| &t.id == id).unwrap();
                let moved = (t.position as i64 - *pos as i64).abs();
                let arrived = arrivals.iter().any(|a| &a.train_id == id);
                assert_eq!(moved == 1, arrived, "{id}");
                assert!(moved <= 1);
                last.insert(id.clone(), (t.position, t.route));
            }
        }
        // Green trains run both branches.
        let green_routes: std::collections::HashSet<usize> = fleet
            .trains
            .iter()
            .filter(|t| t.line == Line::Green)
            .map(|t| t.route)
            .collect();
        assert_eq!(green_routes.len(), 2);
    }
}
