//! How the client commands show an API answer: readable text by default, the answer's JSON with
//! `--json`. A list (`{"data": […], "next_cursor": …}`) becomes a table with chosen columns and
//! a hint for the next page; one object becomes `field  value` lines, with each list of objects
//! inside it (a delivery's attempts) as a table beneath.

use serde_json::{Map, Value};

/// The longest a table cell gets before it is cut (`--json` shows everything).
const CELL_CHARS: usize = 60;

/// What to show of an answer.
#[derive(Debug, Clone, Copy)]
pub enum View {
    /// A list, with these columns (field names, `a.b` for a field inside one; an absent field
    /// shows `-`).
    Table(&'static [&'static str]),
    /// One object, field by field.
    Fields,
    /// One object, field by field, with the columns of some of its lists of objects (the
    /// others show their scalar fields).
    Record(&'static [(&'static str, &'static [&'static str])]),
}

/// The text of `answer` seen as `view`, ending in a newline (empty for an empty answer).
pub fn render(answer: &Value, view: View) -> String {
    match (view, answer) {
        (View::Table(columns), Value::Object(page))
            if page.get("data").is_some_and(Value::is_array) =>
        {
            let rows = page["data"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut text = table(rows, columns);
            if let Some(cursor) = page.get("next_cursor").and_then(Value::as_str) {
                text.push_str(&format!("more: --cursor {cursor}\n"));
            }
            text
        }
        (View::Record(lists), Value::Object(fields)) => object(fields, lists),
        (_, Value::Object(fields)) => object(fields, &[]),
        (_, Value::Array(rows)) => table(rows, &[]),
        (_, other) => format!("{}\n", cell(other)),
    }
}

/// Rows as an aligned table under upper-case headers; with no columns given, the scalar fields
/// of the first row.
fn table(rows: &[Value], columns: &[&str]) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let columns: Vec<&str> = if columns.is_empty() {
        scalar_fields(&rows[0])
    } else {
        columns.to_vec()
    };
    let mut lines: Vec<Vec<String>> = vec![columns.iter().map(|c| c.to_uppercase()).collect()];
    for row in rows {
        lines.push(
            columns
                .iter()
                .map(|c| {
                    let text = cell(field(row, c));
                    if whole(c) {
                        text
                    } else {
                        cut(&text)
                    }
                })
                .collect(),
        );
    }
    aligned(&lines)
}

/// The names of `row`'s fields that hold a scalar or a list of scalars, in [`ordered`] order.
fn scalar_fields(row: &Value) -> Vec<&str> {
    row.as_object()
        .map(|fields| {
            ordered(fields)
                .into_iter()
                .filter(|(_, v)| !v.is_object() && !is_list_of_objects(v))
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// The fields that name a record first (`id`, `name`, `type`, `status`), then the rest by name
/// (a parsed answer keeps no order of its own).
fn ordered(fields: &Map<String, Value>) -> Vec<(&String, &Value)> {
    const FIRST: [&str; 4] = ["id", "name", "type", "status"];
    let rank = |k: &str| FIRST.iter().position(|f| *f == k).unwrap_or(FIRST.len());
    let mut all: Vec<_> = fields.iter().collect();
    all.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    all
}

fn is_list_of_objects(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|items| !items.is_empty() && items.iter().all(Value::is_object))
}

/// The value at `path` (`a` or `a.b`) in `row`; null when absent.
fn field<'v>(row: &'v Value, path: &str) -> &'v Value {
    path.split('.')
        .try_fold(row, |value, name| value.get(name))
        .unwrap_or(&Value::Null)
}

/// `field  value` lines; lists of objects follow as tables of their own, with the columns
/// `lists` gives them.
fn object(fields: &Map<String, Value>, lists: &[(&str, &[&str])]) -> String {
    let mut lines = Vec::new();
    let mut tables = String::new();
    for (name, value) in ordered(fields) {
        if is_list_of_objects(value) {
            let rows = value.as_array().map(Vec::as_slice).unwrap_or_default();
            let columns = lists
                .iter()
                .find(|(list, _)| list == name)
                .map_or(&[][..], |(_, columns)| columns);
            tables.push_str(&format!("\n{name}:\n{}", table(rows, columns)));
        } else {
            lines.push(vec![name.clone(), cell(value)]);
        }
    }
    let mut text = aligned(&lines);
    text.push_str(&tables);
    text
}

/// Lines of cells, each column padded to its widest cell; trailing spaces trimmed.
fn aligned(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            lines
                .iter()
                .filter_map(|l| l.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for line in lines {
        let mut row = String::new();
        for (i, cell) in line.iter().enumerate() {
            row.push_str(cell);
            if i + 1 < line.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                row.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(row.trim_end());
        text.push('\n');
    }
    text
}

/// A value as one line of text: strings unquoted, `-` for null, lists of scalars joined with
/// commas, event filters by their type, anything else as compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.replace(['\n', '\r', '\t'], " "),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            items.iter().map(cell).collect::<Vec<_>>().join(",")
        }
        Value::Array(items)
            if items
                .iter()
                .all(|i| i.get("type").is_some_and(Value::is_string)) =>
        {
            items
                .iter()
                .map(|i| cell(&i["type"]))
                .collect::<Vec<_>>()
                .join(",")
        }
        other => other.to_string(),
    }
}

/// Whether a column is shown uncut: ids and URLs are copied from tables into commands.
fn whole(column: &str) -> bool {
    column == "id" || column == "url" || column.ends_with("_id")
}

/// `text` cut to [`CELL_CHARS`] characters, ending in `…` when cut.
fn cut(text: &str) -> String {
    if text.chars().count() <= CELL_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(CELL_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_is_a_table_with_a_next_page_hint() {
        let page = json!({"data": [
            {"id": "wh_1", "active": true, "url": "http://a", "events": [{"type": "a.*"}, {"type": "b"}]},
            {"id": "wh_22", "active": false, "url": null}
        ], "next_cursor": "c2"});
        let text = render(&page, View::Table(&["id", "active", "url", "events"]));
        assert_eq!(
            text,
            "ID     ACTIVE  URL       EVENTS\n\
             wh_1   true    http://a  a.*,b\n\
             wh_22  false   -         -\n\
             more: --cursor c2\n"
        );
        let empty = json!({"data": [], "next_cursor": null});
        assert_eq!(render(&empty, View::Table(&["id"])), "(none)\n");
    }

    #[test]
    fn an_object_is_fields_with_its_lists_of_objects_as_tables() {
        let delivery = json!({"id": "dlv_1", "status": "failed", "last_error": "line\nbreak",
            "attempts": [{"attempt": 1, "duration_ms": 12, "response": {"status": 500}}]});
        let text = render(&delivery, View::Fields);
        assert_eq!(
            text,
            "id          dlv_1\n\
             status      failed\n\
             last_error  line break\n\
             \n\
             attempts:\n\
             ATTEMPT  DURATION_MS\n\
             1        12\n"
        );
    }

    #[test]
    fn a_record_gives_its_lists_columns_inside_their_objects() {
        let delivery = json!({"id": "dlv_1", "attempts": [
            {"attempt": 1, "response": {"status": 500}, "error": null},
            {"attempt": 2, "response": null, "error": "timed out"}]});
        let text = render(
            &delivery,
            View::Record(&[("attempts", &["attempt", "response.status", "error"])]),
        );
        assert_eq!(
            text,
            "id  dlv_1\n\
             \n\
             attempts:\n\
             ATTEMPT  RESPONSE.STATUS  ERROR\n\
             1        500              -\n\
             2        -                timed out\n"
        );
    }

    #[test]
    fn long_cells_are_cut_and_nested_values_are_compact_json() {
        let long = "x".repeat(100);
        let page = json!({"data": [{"id": long, "error": long, "auth": {"type": "basic"}}]});
        let text = render(&page, View::Table(&["id", "error", "auth"]));
        let row = text.lines().nth(1).unwrap();
        let cut = format!("{}…", "x".repeat(59));
        assert!(
            row.starts_with(&format!("{long}  {cut}  ")),
            "ids are whole: {row}"
        );
        assert!(row.ends_with(r#"{"type":"basic"}"#), "{row}");
    }
}
