//! Comparing observed JSON values with a scenario's expected scalars.

use serde_json::Value;

use crate::scenario::{Op, Scalar};

/// Whether `actual OP expected` holds. Numbers compare as numbers, strings as strings (and
/// numbers written as strings, as protobuf JSON writes 64-bit integers, as numbers).
pub fn holds(actual: &Value, op: Op, expected: &Scalar) -> bool {
    match (number(actual), expected_number(expected)) {
        (Some(a), Some(e)) if !op.is_textual() => return compare_numbers(a, op, e),
        _ => {}
    }
    let text = match actual {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let wanted = match expected {
        Scalar::String(s) => s.clone(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(x) => x.to_string(),
    };
    match op {
        Op::Eq => text == wanted,
        Op::Ne => text != wanted,
        Op::StartsWith => text.starts_with(&wanted),
        Op::Contains => text.contains(&wanted),
        _ => false,
    }
}

fn compare_numbers(a: f64, op: Op, e: f64) -> bool {
    match op {
        Op::Eq => a == e,
        Op::Ne => a != e,
        Op::Gt => a > e,
        Op::Ge => a >= e,
        Op::Lt => a < e,
        Op::Le => a <= e,
        Op::StartsWith | Op::Contains => false,
    }
}

/// A JSON value as a number, if it is one (or a string holding one).
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn expected_number(expected: &Scalar) -> Option<f64> {
    match expected {
        Scalar::Int(i) => Some(*i as f64),
        Scalar::Float(x) => Some(*x),
        Scalar::Bool(b) => Some(f64::from(u8::from(*b))),
        Scalar::String(_) => None,
    }
}

/// The value at a dotted path (`meta.inbound`, `conn.addr`).
pub fn at_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_strings_and_bools() {
        assert!(holds(&json!(1001), Op::Gt, &Scalar::Int(1000)));
        assert!(holds(&json!("5"), Op::Eq, &Scalar::Int(5)));
        assert!(holds(&json!(true), Op::Eq, &Scalar::Bool(true)));
        assert!(holds(
            &json!("addr message size = 1001"),
            Op::StartsWith,
            &Scalar::String("addr message".into())
        ));
        assert!(!holds(&json!("x"), Op::Eq, &Scalar::String("y".into())));
        assert_eq!(
            at_path(&json!({"meta": {"inbound": true}}), "meta.inbound"),
            Some(&json!(true))
        );
    }
}
