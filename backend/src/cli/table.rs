//! What list commands print: aligned columns under a header, no borders,
//! so the output reads in a terminal and cuts with `awk`.

use comfy_table::{Table, presets};

/// Prints `rows` under `header`, one row per line.
pub(super) fn print(header: &[&str], rows: Vec<Vec<String>>) {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.iter().map(|name| name.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    // Two spaces between columns, none before the first.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    // Rows end where their last column does: no trailing padding.
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

/// A Unix-ms time as people read it (UTC, to the second); `-` for none.
pub(super) fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}
