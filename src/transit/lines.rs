//! The three lines, their colours, train-id prefixes and routes (a route is the station
//! sequence one train runs; the Green line has two, one per southern branch).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Line {
    Blue,
    Red,
    Green,
}

impl Line {
    pub const ALL: [Line; 3] = [Line::Blue, Line::Red, Line::Green];

    pub fn as_str(self) -> &'static str {
        match self {
            Line::Blue => "blue",
            Line::Red => "red",
            Line::Green => "green",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Line::Blue => "Blue Line",
            Line::Red => "Red Line",
            Line::Green => "Green Line",
        }
    }

    /// CSS colour of the line on the status page.
    pub fn color(self) -> &'static str {
        match self {
            Line::Blue => "#1E90FF",
            Line::Red => "#DC143C",
            Line::Green => "#32CD32",
        }
    }

    /// Prefix of train ids (`BL001`), as the original CTA project names its trains.
    pub fn train_prefix(self) -> &'static str {
        match self {
            Line::Blue => "BL",
            Line::Red => "RL",
            Line::Green => "GL",
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Line {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "blue" => Ok(Line::Blue),
            "red" => Ok(Line::Red),
            "green" => Ok(Line::Green),
            other => Err(format!(
                "unknown line '{other}' (expected blue, red or green)"
            )),
        }
    }
}

/// Direction of travel, as the original CTA project defines it: `b` toward increasing station
/// order (Blue: Forest Park; Red: 95th/Dan Ryan; Green: Ashland/63rd or Cottage Grove), `a` back
/// toward the first terminal (O'Hare, Howard, Harlem/Lake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    A,
    B,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::A => "a",
            Direction::B => "b",
        }
    }

    pub fn flip(self) -> Self {
        match self {
            Direction::A => Direction::B,
            Direction::B => Direction::A,
        }
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "a" => Ok(Direction::A),
            "b" => Ok(Direction::B),
            other => Err(format!("unknown direction '{other}' (expected a or b)")),
        }
    }
}
