//! RPC expectations: call a method on the node at a time, narrow the result to a group's
//! peers, pick a field, fold it and compare.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::compare;
use crate::node::NodeRpc;
use crate::scenario::{Aggregate, RpcCheck};

/// What the check looks at, for the report (`sum(getpeerinfo.addr_rate_limited)`).
pub(super) fn subject(check: &RpcCheck) -> String {
    let field = check.field.as_deref().unwrap_or("result");
    match check.aggregate {
        Aggregate::Value => format!("{}.{field}", check.method),
        other => format!("{}({}.{field})", other.as_str(), check.method),
    }
}

/// Calls the RPC and compares; returns whether it held and what was observed.
pub(super) fn evaluate(
    node: &impl NodeRpc,
    check: &RpcCheck,
    registry: &Mutex<HashMap<String, String>>,
) -> (bool, String) {
    let result: Value = match node.rpc(&check.method, &check.params) {
        Ok(v) => v,
        Err(e) => return (false, format!("RPC failed: {e}")),
    };
    let result = match (&check.group, result) {
        (Some(group), Value::Array(items)) => {
            let addrs = registry.lock().map(|m| m.clone()).unwrap_or_default();
            Value::Array(
                items
                    .into_iter()
                    .filter(|p| {
                        p["addr"]
                            .as_str()
                            .and_then(|a| addrs.get(a))
                            .is_some_and(|g| g == group)
                    })
                    .collect(),
            )
        }
        (_, other) => other,
    };
    let field = |v: &Value| match &check.field {
        Some(path) => compare::at_path(v, path).cloned().unwrap_or(Value::Null),
        None => v.clone(),
    };
    let value = match check.aggregate {
        Aggregate::Value => field(&result),
        Aggregate::Count => json!(result.as_array().map_or(0, Vec::len)),
        Aggregate::Sum | Aggregate::Min | Aggregate::Max => {
            let numbers: Vec<f64> = result
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| compare::number(&field(v)))
                .collect();
            let folded = match check.aggregate {
                Aggregate::Sum => Some(numbers.iter().sum()),
                Aggregate::Min => numbers.iter().copied().reduce(f64::min),
                _ => numbers.iter().copied().reduce(f64::max),
            };
            folded.map_or(Value::Null, |n| json!(n))
        }
    };
    (
        compare::holds(&value, check.op, &check.value),
        value.to_string(),
    )
}
