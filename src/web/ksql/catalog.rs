//! The streams and tables the endpoint serves, as ksqlDB would list them: the turnstile
//! source stream, TURNSTILE_SUMMARY with the columns `ksql/turnstile.sql` gives it (key
//! `STATION_KEY`, its value copy `STATION_ID`, `COUNT`), and the windowed count tables under
//! their ksqlDB-style names (`turnstile-hourly` is `TURNSTILE_HOURLY`); the worker's other
//! tables as the page reads them: STATIONS (key LINE, STATION_ID), TRAIN_POSITIONS (each
//! train's latest sighting, key TRAIN_ID) and WEATHER (the latest reading, key ID). Also the
//! `/ksql` answers that only read this catalog: SHOW STREAMS, SHOW TABLES, DESCRIBE.

use crate::transit::agents::TransitTables;
use crate::transit::models::topics;
use crate::transit::queries::Window;
use crate::transit::tables;
use serde_json::{json, Value as Json};

/// ksqlDB column types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Integer,
    Bigint,
    Double,
    String,
}

impl SqlType {
    pub fn as_str(self) -> &'static str {
        match self {
            SqlType::Integer => "INTEGER",
            SqlType::Bigint => "BIGINT",
            SqlType::Double => "DOUBLE",
            SqlType::String => "STRING",
        }
    }
}

/// What a column holds in a pull query's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The station id (the key, or its value copy in TURNSTILE_SUMMARY).
    Station,
    WindowStart,
    WindowEnd,
    Count,
    /// A column of a [`Data::Entities`] row, read by its name.
    Field,
    /// A stream column (streams are not queried).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: SqlType,
    pub key: bool,
    pub role: Role,
}

const fn col(name: &'static str, ty: SqlType, key: bool, role: Role) -> Column {
    Column {
        name,
        ty,
        key,
        role,
    }
}

/// Where a source's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    Stream,
    Summary,
    Windowed(Window),
    Entities(Entity),
}

/// The worker's keyed tables that are not counts, read as the page reads them (merged across
/// workers; a train's latest sighting, the latest weather).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Stations,
    Trains,
    Weather,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub name: &'static str,
    pub data: Data,
    pub topic: &'static str,
    pub key_format: &'static str,
    pub value_format: &'static str,
    /// The declared columns (window bounds of windowed tables are not among them).
    pub columns: &'static [Column],
    /// The native table behind it, for messages.
    pub native: &'static str,
}

const STREAM_COLUMNS: [Column; 3] = [
    col("STATION_ID", SqlType::Integer, false, Role::Other),
    col("STATION_NAME", SqlType::String, false, Role::Other),
    col("LINE", SqlType::String, false, Role::Other),
];
const SUMMARY_COLUMNS: [Column; 3] = [
    col("STATION_KEY", SqlType::Integer, true, Role::Station),
    col("STATION_ID", SqlType::Integer, false, Role::Station),
    col("COUNT", SqlType::Bigint, false, Role::Count),
];
const WINDOWED_COLUMNS: [Column; 2] = [
    col("STATION_ID", SqlType::Integer, true, Role::Station),
    col("COUNT", SqlType::Bigint, false, Role::Count),
];
const STATION_COLUMNS: [Column; 4] = [
    col("LINE", SqlType::String, true, Role::Field),
    col("STATION_ID", SqlType::Integer, true, Role::Field),
    col("STATION_NAME", SqlType::String, false, Role::Field),
    col("STOP_ORDER", SqlType::Integer, false, Role::Field),
];
const TRAIN_COLUMNS: [Column; 8] = [
    col("TRAIN_ID", SqlType::String, true, Role::Field),
    col("LINE", SqlType::String, false, Role::Field),
    col("STATION_ID", SqlType::Integer, false, Role::Field),
    col("DIRECTION", SqlType::String, false, Role::Field),
    col("TRAIN_STATUS", SqlType::String, false, Role::Field),
    col("EVENT_TIME", SqlType::Bigint, false, Role::Field),
    // From the stations table, joined when the arrival was processed (null before its row).
    col("STATION_NAME", SqlType::String, false, Role::Field),
    col("STOP_ORDER", SqlType::Integer, false, Role::Field),
];
const WEATHER_COLUMNS: [Column; 4] = [
    col("ID", SqlType::String, true, Role::Field),
    col("TEMPERATURE", SqlType::Double, false, Role::Field),
    col("STATUS", SqlType::String, false, Role::Field),
    col("EVENT_TIME", SqlType::Bigint, false, Role::Field),
];
const WINDOW_BOUNDS: [Column; 2] = [
    col("WINDOWSTART", SqlType::Bigint, true, Role::WindowStart),
    col("WINDOWEND", SqlType::Bigint, true, Role::WindowEnd),
];

/// Every source, streams first.
pub static SOURCES: [Source; 7] = [
    Source {
        name: "TURNSTILE",
        data: Data::Stream,
        topic: topics::TURNSTILE,
        key_format: "AVRO",
        value_format: "AVRO",
        columns: &STREAM_COLUMNS,
        native: topics::TURNSTILE,
    },
    Source {
        name: "TURNSTILE_SUMMARY",
        data: Data::Summary,
        topic: topics::TURNSTILE_SUMMARY,
        key_format: "JSON",
        value_format: "JSON",
        columns: &SUMMARY_COLUMNS,
        native: tables::TURNSTILE,
    },
    Source {
        name: "TURNSTILE_HOURLY",
        data: Data::Windowed(Window::Hourly),
        topic: "",
        key_format: "NONE",
        value_format: "NONE",
        columns: &WINDOWED_COLUMNS,
        native: tables::TURNSTILE_HOURLY,
    },
    Source {
        name: "TURNSTILE_RECENT",
        data: Data::Windowed(Window::Recent),
        topic: "",
        key_format: "NONE",
        value_format: "NONE",
        columns: &WINDOWED_COLUMNS,
        native: tables::TURNSTILE_RECENT,
    },
    Source {
        name: "STATIONS",
        data: Data::Entities(Entity::Stations),
        topic: topics::STATIONS_TABLE,
        key_format: "JSON",
        value_format: "JSON",
        columns: &STATION_COLUMNS,
        native: tables::STATIONS,
    },
    Source {
        name: "TRAIN_POSITIONS",
        data: Data::Entities(Entity::Trains),
        topic: topics::ARRIVALS,
        key_format: "AVRO",
        value_format: "AVRO",
        columns: &TRAIN_COLUMNS,
        native: tables::TRAINS,
    },
    Source {
        name: "WEATHER",
        data: Data::Entities(Entity::Weather),
        topic: topics::WEATHER,
        key_format: "AVRO",
        value_format: "AVRO",
        columns: &WEATHER_COLUMNS,
        native: tables::WEATHER,
    },
];

/// A source by its ksqlDB name (already upper-cased unless quoted).
pub fn find(name: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.name == name)
}

/// Names of the tables, for messages.
pub fn table_names() -> String {
    SOURCES
        .iter()
        .filter(|s| s.data != Data::Stream)
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Source {
    pub fn is_stream(&self) -> bool {
        self.data == Data::Stream
    }

    /// The columns a pull query returns, in order: key, window bounds, values.
    pub fn query_columns(&self) -> Vec<Column> {
        let mut out: Vec<Column> = self.columns.iter().filter(|c| c.key).copied().collect();
        if matches!(self.data, Data::Windowed(_)) {
            out.extend(WINDOW_BOUNDS);
        }
        out.extend(self.columns.iter().filter(|c| !c.key).copied());
        out
    }

    /// `(TUMBLING|HOPPING, size ms)` of a windowed table.
    fn window_type(&self, t: &TransitTables) -> Option<&'static str> {
        let Data::Windowed(w) = self.data else {
            return None;
        };
        let windows = match w {
            Window::Hourly => t.turnstile_hourly.windows(),
            Window::Recent => t.turnstile_recent.windows(),
        };
        Some(if windows.size_ms == windows.step_ms {
            "TUMBLING"
        } else {
            "HOPPING"
        })
    }

    fn listing(&self) -> Json {
        let mut v = json!({
            "type": if self.is_stream() { "STREAM" } else { "TABLE" },
            "name": self.name,
            "topic": self.topic,
            "keyFormat": self.key_format,
            "valueFormat": self.value_format,
            "isWindowed": matches!(self.data, Data::Windowed(_)),
        });
        if self.is_stream() {
            if let Some(o) = v.as_object_mut() {
                o.remove("isWindowed");
            }
        }
        v
    }

    /// DESCRIBE's `sourceDescription`.
    pub fn description(&self, t: &TransitTables, extended: bool) -> Json {
        let fields: Vec<Json> = self
            .columns
            .iter()
            .map(|c| {
                let mut f = json!({
                    "name": c.name,
                    "schema": {"type": c.ty.as_str(), "fields": null, "memberSchema": null},
                });
                if c.key {
                    f["type"] = json!("KEY");
                }
                f
            })
            .collect();
        json!({
            "name": self.name,
            "windowType": self.window_type(t),
            "readQueries": [],
            "writeQueries": [],
            "fields": fields,
            "type": if self.is_stream() { "STREAM" } else { "TABLE" },
            "timestamp": "",
            "statistics": "",
            "errorStats": "",
            "extended": extended,
            "keyFormat": self.key_format,
            "valueFormat": self.value_format,
            "topic": self.topic,
            "partitions": 0,
            "replication": 0,
            "statement": format!("native table `{}` of cta-stream", self.native),
            "queryOffsetSummaries": [],
            "sourceConstraints": [],
        })
    }
}

/// The answer entity of `SHOW STREAMS;` or `SHOW TABLES;`.
pub fn show(statement_text: &str, streams: bool) -> Json {
    let list: Vec<Json> = SOURCES
        .iter()
        .filter(|s| s.is_stream() == streams)
        .map(Source::listing)
        .collect();
    if streams {
        json!({"@type": "streams", "statementText": statement_text, "streams": list, "warnings": []})
    } else {
        json!({"@type": "tables", "statementText": statement_text, "tables": list, "warnings": []})
    }
}

/// The answer entity of `DESCRIBE <source>;`, `None` when there is no such source.
pub fn describe(
    statement_text: &str,
    name: &str,
    t: &TransitTables,
    extended: bool,
) -> Option<Json> {
    let s = find(name)?;
    Some(json!({
        "@type": "sourceDescription",
        "statementText": statement_text,
        "sourceDescription": s.description(t, extended),
        "warnings": [],
    }))
}
