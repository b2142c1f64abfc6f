"""Runs ksqlDB statements through a real ksqlDB client library (ksql-python-ng, `import ksql`)
against a server and prints what it got back as one JSON object, for tests/e2e/ksql_api.rs.

Usage: pull_queries.py URL STATION STATION,STATION,... WINDOWSTART_MS
"""

import json
import sys

from ksql import KSQLAPI
from ksql.errors import KSQLError


def main():
    url, station, some, start = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    # Reads GET /info on connect, as the library does.
    client = KSQLAPI(url)
    out = {"version": client.get_ksql_version()}
    out["tables"] = client.ksql("SHOW TABLES;")
    out["streams"] = client.ksql("SHOW STREAMS")
    out["describe"] = client.ksql("DESCRIBE TURNSTILE_HOURLY;")

    def query(sql):
        # /query over HTTP/1.1; the chunks joined are ksqlDB's JSON array.
        return json.loads("".join(client.query(sql)))

    out["all"] = query("SELECT * FROM TURNSTILE_SUMMARY;")
    out["one"] = query(f"select * from turnstile_summary where station_id = {station};")
    out["in"] = query(f"SELECT STATION_ID, `COUNT` FROM TURNSTILE_SUMMARY WHERE STATION_ID IN ({some});")
    out["hourly"] = query(
        f"SELECT * FROM TURNSTILE_HOURLY WHERE STATION_ID = {station} AND WINDOWSTART >= {start};"
    )
    errors = {}
    for name, statement in [
        ("ddl", "CREATE STREAM x (a INT) WITH (KAFKA_TOPIC='x', VALUE_FORMAT='JSON');"),
        ("unknown", "DESCRIBE NOPE;"),
    ]:
        try:
            client.ksql(statement)
            errors[name] = None
        except KSQLError as e:
            errors[name] = {"code": e.error_code, "message": e.msg}
    try:
        query("SELECT * FROM TURNSTILE_SUMMARY WHERE COUNT > 3;")
        errors["non_key"] = None
    except ValueError as e:
        errors["non_key"] = {"message": str(e)}
    out["errors"] = errors
    print(json.dumps(out))


if __name__ == "__main__":
    main()
