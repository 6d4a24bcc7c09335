//! Output in the `openstack` CLI's conventions: `-f table|json|yaml|value`,
//! `-c COLUMN` (by heading or field name), lists as tables of rows and single
//! resources as Field/Value tables.

use std::fmt::Write as _;

use clap::ValueEnum;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
    Value,
}

/// How to print: the format and an optional column selection.
#[derive(Debug, Clone, Default)]
pub struct Printer {
    pub format: Format,
    pub columns: Vec<String>,
}

/// A column: the API field and its heading.
#[derive(Debug, Clone)]
pub struct Column {
    pub field: String,
    pub heading: String,
}

impl Column {
    pub fn new(field: &str) -> Column {
        Column { field: field.to_owned(), heading: heading(field) }
    }
}

/// The heading the `openstack` CLI shows for a field.
pub fn heading(field: &str) -> String {
    match field {
        "uuid" => "UUID".into(),
        "provision_state" => "Provisioning State".into(),
        "target_provision_state" => "Target Provisioning State".into(),
        "instance_uuid" => "Instance UUID".into(),
        "chassis_uuid" => "Chassis UUID".into(),
        "node_uuid" => "Node UUID".into(),
        "portgroup_uuid" => "Portgroup UUID".into(),
        "id" => "ID".into(),
        "connector_id" => "Connector ID".into(),
        "volume_id" => "Volume ID".into(),
        other => {
            let mut out = String::new();
            for (index, word) in other.split('_').enumerate() {
                if index > 0 {
                    out.push(' ');
                }
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(chars.as_str());
                }
            }
            out
        }
    }
}

/// A cell's text.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::String(text) => text.clone(),
        Value::Bool(flag) => if *flag { "True" } else { "False" }.into(),
        Value::Number(number) => number.to_string(),
        other => other.to_string(),
    }
}

impl Printer {
    fn selected(&self, columns: &[Column]) -> Result<Vec<Column>, String> {
        if self.columns.is_empty() {
            return Ok(columns.to_vec());
        }
        self.columns
            .iter()
            .map(|wanted| {
                columns
                    .iter()
                    .find(|c| c.heading.eq_ignore_ascii_case(wanted) || c.field == *wanted)
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            "no column {wanted:?}; choose from: {}",
                            columns
                                .iter()
                                .map(|c| c.heading.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
            })
            .collect()
    }

    /// Prints rows (a listing).
    pub fn list(&self, columns: &[Column], rows: &[Value]) -> Result<String, String> {
        let columns = self.selected(columns)?;
        let mut out = String::new();
        match self.format {
            Format::Table => {
                let headings: Vec<String> = columns.iter().map(|c| c.heading.clone()).collect();
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|row| columns.iter().map(|c| cell(&row[&c.field])).collect())
                    .collect();
                out.push_str(&table(&headings, &cells));
            }
            Format::Json => {
                let items: Vec<Value> =
                    rows.iter().map(|row| project(row, &columns, true)).collect();
                let _ = writeln!(out, "{}", pretty(&Value::Array(items)));
            }
            Format::Yaml => {
                let items: Vec<Value> =
                    rows.iter().map(|row| project(row, &columns, true)).collect();
                out.push_str(&yaml(&Value::Array(items), 0));
            }
            Format::Value => {
                for row in rows {
                    let cells: Vec<String> = columns.iter().map(|c| cell(&row[&c.field])).collect();
                    let _ = writeln!(out, "{}", cells.join(" "));
                }
            }
        }
        Ok(out)
    }

    /// Prints one resource as Field/Value pairs.
    pub fn show(&self, object: &Value) -> Result<String, String> {
        let map = object.as_object().cloned().unwrap_or_default();
        let columns: Vec<Column> = map
            .keys()
            .filter(|key| !is_link_list(&map[key.as_str()]))
            .map(|key| Column { field: key.clone(), heading: key.clone() })
            .collect();
        let columns = self.selected(&columns)?;
        let mut out = String::new();
        match self.format {
            Format::Table => {
                let headings = vec!["Field".to_owned(), "Value".to_owned()];
                let cells: Vec<Vec<String>> =
                    columns.iter().map(|c| vec![c.field.clone(), cell(&map[&c.field])]).collect();
                out.push_str(&table(&headings, &cells));
            }
            Format::Json => {
                let _ = writeln!(out, "{}", pretty(&project(object, &columns, false)));
            }
            Format::Yaml => out.push_str(&yaml(&project(object, &columns, false), 0)),
            Format::Value => {
                for column in &columns {
                    let _ = writeln!(out, "{}", cell(&map[&column.field]));
                }
            }
        }
        Ok(out)
    }
}

fn is_link_list(value: &Value) -> bool {
    value.as_array().is_some_and(|items| {
        !items.is_empty()
            && items.iter().all(|item| item.get("rel").is_some() && item.get("href").is_some())
    })
}

/// An ASCII table in the `openstack` CLI's style; multi-line cells grow
/// their row.
pub fn table(headings: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headings.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (index, text) in row.iter().enumerate() {
            let widest = text.lines().map(|line| line.chars().count()).max().unwrap_or(0);
            if let Some(width) = widths.get_mut(index) {
                *width = (*width).max(widest);
            }
        }
    }
    let rule: String = {
        let mut line = String::from("+");
        for width in &widths {
            line.push_str(&"-".repeat(width + 2));
            line.push('+');
        }
        line.push('\n');
        line
    };
    let render = |cells: &[String]| -> String {
        let height = cells.iter().map(|c| c.lines().count().max(1)).max().unwrap_or(1);
        let mut text = String::new();
        for line_index in 0..height {
            text.push('|');
            for (index, width) in widths.iter().enumerate() {
                let line = cells.get(index).and_then(|c| c.lines().nth(line_index)).unwrap_or("");
                let pad = width - line.chars().count();
                let _ = write!(text, " {line}{} |", " ".repeat(pad));
            }
            text.push('\n');
        }
        text
    };
    let mut out = rule.clone();
    out.push_str(&render(headings));
    out.push_str(&rule);
    for row in rows {
        out.push_str(&render(row));
    }
    if !rows.is_empty() {
        out.push_str(&rule);
    }
    out
}

fn project(row: &Value, columns: &[Column], by_heading: bool) -> Value {
    let mut map = Map::new();
    for column in columns {
        let key = if by_heading { column.heading.clone() } else { column.field.clone() };
        map.insert(key, row.get(&column.field).cloned().unwrap_or(Value::Null));
    }
    Value::Object(map)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A small YAML emitter for JSON values (block style; strings quoted when
/// YAML would misread them).
pub fn yaml(value: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        let _ = writeln!(out, "{pad}{}:", scalar(&Value::String(key.clone())));
                        out.push_str(&yaml(item, indent + 2));
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        let _ = writeln!(out, "{pad}{}:", scalar(&Value::String(key.clone())));
                        out.push_str(&yaml(item, indent));
                    }
                    _ => {
                        let _ = writeln!(
                            out,
                            "{pad}{}: {}",
                            scalar(&Value::String(key.clone())),
                            scalar(item)
                        );
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        let nested = yaml(item, indent + 2);
                        let trimmed = nested.trim_start();
                        let _ = write!(out, "{pad}- {trimmed}");
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}- {}", scalar(item));
                    }
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other));
        }
    }
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => {
            let plain = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ' '))
                && !text.starts_with(' ')
                && !text.ends_with(' ')
                && !matches!(
                    text.to_ascii_lowercase().as_str(),
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
                )
                && text.parse::<f64>().is_err();
            if plain {
                text.clone()
            } else {
                serde_json::to_string(text).unwrap_or_default()
            }
        }
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Array(items) if items.is_empty() => "[]".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_is_readable() {
        let value =
            json!({"name": "n1", "extra": {"a": 1, "b": [1, "two"]}, "empty": {}, "flag": "true"});
        assert_eq!(
            yaml(&value, 0),
            "empty: {}\nextra:\n  a: 1\n  b:\n  - 1\n  - two\nflag: \"true\"\nname: n1\n"
        );
    }

    #[test]
    fn columns_by_heading_or_field() {
        let printer = Printer {
            format: Format::Value,
            columns: vec!["Provisioning State".into(), "name".into()],
        };
        let rows = [json!({"name": "n1", "provision_state": "enroll"})];
        let columns = [Column::new("name"), Column::new("provision_state")];
        assert_eq!(printer.list(&columns, &rows).expect("list"), "enroll n1\n");
        let bad = Printer { format: Format::Value, columns: vec!["nope".into()] };
        assert!(bad.list(&columns, &rows).is_err());
    }
}
