//! A pull query's `SELECT` read into a [`PullQuery`]: one source, plain columns, a WHERE of
//! comparisons, `IN` lists and `BETWEEN` joined by AND, an optional LIMIT. Every other SQL form
//! is refused with a message saying what this server takes instead.
//!
//! Not here: telling a `SELECT` from other statements (the parent module), running it
//! (`execute`).

use super::super::ApiError;
use super::{bad, name, object_name, Cmp, Condition, Literal, PullQuery, MAX_IN_VALUES};
use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, InTarget, LimitClause, Query, Select, SelectItem, SetExpr,
    TableFactor, UnaryOperator, Value,
};

fn not_supported(what: &str, text: &str) -> ApiError {
    bad(
        format!("{what} not supported in pull queries by this server"),
        text,
    )
}

pub(super) fn pull(q: Query, text: &str) -> Result<PullQuery, ApiError> {
    if q.with.is_some() {
        return Err(not_supported("WITH is", text));
    }
    if q.order_by.is_some() {
        return Err(not_supported("ORDER BY is", text));
    }
    if q.fetch.is_some() || !q.locks.is_empty() || q.for_clause.is_some() {
        return Err(not_supported("FETCH / FOR clauses are", text));
    }
    if q.settings.is_some() || q.format_clause.is_some() || !q.pipe_operators.is_empty() {
        return Err(not_supported(
            "SETTINGS / FORMAT / pipe operators are",
            text,
        ));
    }
    let limit = match q.limit_clause {
        None => None,
        Some(LimitClause::LimitOffset {
            limit: Some(limit),
            offset: None,
            limit_by,
        }) if limit_by.is_empty() => match literal(&limit, text)? {
            Literal::Int(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => return Err(bad("LIMIT takes a non-negative integer", text)),
        },
        Some(_) => return Err(not_supported("OFFSET is", text)),
    };
    let select = match *q.body {
        SetExpr::Select(s) => *s,
        SetExpr::Query(_) => return Err(not_supported("nested queries are", text)),
        SetExpr::SetOperation { op, .. } => {
            return Err(not_supported(&format!("{op} is"), text));
        }
        _ => return Err(not_supported("this statement form is", text)),
    };
    from_select(select, limit, text)
}

fn from_select(s: Select, limit: Option<usize>, text: &str) -> Result<PullQuery, ApiError> {
    if s.distinct.is_some() || s.top.is_some() {
        return Err(not_supported("DISTINCT / TOP are", text));
    }
    if s.into.is_some() || !s.lateral_views.is_empty() || s.prewhere.is_some() {
        return Err(not_supported("INTO / LATERAL VIEW / PREWHERE are", text));
    }
    let grouped = match &s.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(e, m) => !e.is_empty() || !m.is_empty(),
    };
    if grouped || s.having.is_some() {
        return Err(bad(
            "GROUP BY / HAVING are not supported in pull queries: the tables are already \
             aggregated (TURNSTILE_SUMMARY counts per station)",
            text,
        ));
    }
    if !s.cluster_by.is_empty()
        || !s.distribute_by.is_empty()
        || !s.sort_by.is_empty()
        || !s.named_window.is_empty()
        || s.qualify.is_some()
        || !s.connect_by.is_empty()
    {
        return Err(not_supported(
            "CLUSTER/DISTRIBUTE/SORT BY, WINDOW, QUALIFY are",
            text,
        ));
    }
    let source = match s.from.as_slice() {
        [] => return Err(bad("a pull query needs FROM <table>", text)),
        [one] if one.joins.is_empty() => match &one.relation {
            TableFactor::Table {
                name, args: None, ..
            } => object_name(name, text)?,
            _ => return Err(not_supported("sub-queries and table functions are", text)),
        },
        _ => {
            return Err(bad(
                "joins are not supported by this server: a pull query reads one table",
                text,
            ))
        }
    };
    let mut columns = Vec::new();
    let mut star = false;
    for item in &s.projection {
        match item {
            SelectItem::Wildcard(_) => star = true,
            SelectItem::UnnamedExpr(e) => {
                let c = column(e, text)?;
                columns.push((c.clone(), c));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                columns.push((column(expr, text)?, name(alias)));
            }
            other => {
                return Err(bad(
                    format!("only column names and * can be selected here, not `{other}`"),
                    text,
                ))
            }
        }
    }
    if star && !columns.is_empty() {
        return Err(bad("select * or a list of columns, not both", text));
    }
    let mut conditions = Vec::new();
    if let Some(w) = &s.selection {
        conjuncts(w, text, &mut conditions)?;
    }
    Ok(PullQuery {
        source,
        columns: (!star).then_some(columns),
        conditions,
        limit,
    })
}

/// A column reference: `COL` or `T.COL`.
fn column(e: &Expr, text: &str) -> Result<String, ApiError> {
    match e {
        Expr::Identifier(i) => Ok(name(i)),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => Ok(name(&parts[1])),
        Expr::Nested(inner) => column(inner, text),
        other => Err(bad(
            format!("expected a column name, got `{other}` (expressions and functions are not supported here)"),
            text,
        )),
    }
}

fn literal(e: &Expr, text: &str) -> Result<Literal, ApiError> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse::<i64>()
                .map(Literal::Int)
                .map_err(|_| bad(format!("{n} is not a 64-bit integer"), text)),
            Value::SingleQuotedString(s) => Ok(Literal::Text(s.clone())),
            other => Err(bad(
                format!("unsupported literal `{other}`: use integers or 'quoted' timestamps"),
                text,
            )),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr, text)? {
            Literal::Int(n) => {
                Ok(Literal::Int(n.checked_neg().ok_or_else(|| {
                    bad(format!("-{n} is not a 64-bit integer"), text)
                })?))
            }
            Literal::Text(_) => Err(bad("a minus sign before a string", text)),
        },
        Expr::Nested(inner) => literal(inner, text),
        other => Err(bad(
            format!("expected a literal value, got `{other}`"),
            text,
        )),
    }
}

fn cmp(op: &BinaryOperator) -> Option<Cmp> {
    Some(match op {
        BinaryOperator::Eq => Cmp::Eq,
        BinaryOperator::Lt => Cmp::Lt,
        BinaryOperator::LtEq => Cmp::LtEq,
        BinaryOperator::Gt => Cmp::Gt,
        BinaryOperator::GtEq => Cmp::GtEq,
        _ => None?,
    })
}

fn flip(c: Cmp) -> Cmp {
    match c {
        Cmp::Eq => Cmp::Eq,
        Cmp::Lt => Cmp::Gt,
        Cmp::LtEq => Cmp::GtEq,
        Cmp::Gt => Cmp::Lt,
        Cmp::GtEq => Cmp::LtEq,
    }
}

fn is_column(e: &Expr) -> bool {
    match e {
        Expr::Identifier(_) => true,
        Expr::CompoundIdentifier(p) => p.len() == 2,
        Expr::Nested(inner) => is_column(inner),
        _ => false,
    }
}

/// Splits a WHERE clause on AND into conditions.
fn conjuncts(e: &Expr, text: &str, out: &mut Vec<Condition>) -> Result<(), ApiError> {
    match e {
        Expr::Nested(inner) => conjuncts(inner, text, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, text, out)?;
            conjuncts(right, text, out)
        }
        Expr::BinaryOp {
            op: BinaryOperator::Or,
            ..
        } => Err(bad(
            "OR is not supported in pull queries by this server; use STATION_ID IN (...) for several keys",
            text,
        )),
        Expr::BinaryOp { left, op, right } => {
            let Some(c) = cmp(op) else {
                return Err(bad(format!("unsupported operator {op} in WHERE"), text));
            };
            if is_column(left) && !is_column(right) {
                out.push(Condition::Compare(column(left, text)?, c, literal(right, text)?));
            } else if is_column(right) && !is_column(left) {
                out.push(Condition::Compare(
                    column(right, text)?,
                    flip(c),
                    literal(left, text)?,
                ));
            } else {
                return Err(bad(
                    format!("`{e}`: a condition compares one column with a literal"),
                    text,
                ));
            }
            Ok(())
        }
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated: false,
            ..
        } => {
            if list.len() > MAX_IN_VALUES {
                return Err(bad(
                    format!(
                        "IN list of {} values; this server takes at most {MAX_IN_VALUES}",
                        list.len()
                    ),
                    text,
                ));
            }
            let values = list
                .iter()
                .map(|v| literal(v, text))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Condition::In(column(expr, text)?, values));
            Ok(())
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } => {
            out.push(Condition::Between(
                column(expr, text)?,
                literal(low, text)?,
                literal(high, text)?,
            ));
            Ok(())
        }
        other => Err(bad(
            format!("unsupported condition `{other}`: use =, <, <=, >, >=, BETWEEN and IN joined by AND"),
            text,
        )),
    }
}
