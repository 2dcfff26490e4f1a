//! Tables for `list`, `status` and `queue`: aligned columns, statuses in colour on a terminal
//! unless NO_COLOR is set.

use crate::record::Status;
use std::io::IsTerminal;

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    // Plain padding: comfy-table took ~100 ms for `list` of 10,000 runs, this takes a few.
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out =
        String::with_capacity((widths.iter().sum::<usize>() + 2 * widths.len()) * (rows.len() + 1));
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let start = out.len();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            out.extend(std::iter::repeat_n(
                ' ',
                width.saturating_sub(cell.chars().count()),
            ));
        }
        let end = out[start..].trim_end().len() + start;
        out.truncate(end);
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out.pop();
    out
}

/// Like `render`, with the STATUS column coloured. Colour is applied after the columns are
/// laid out, so widths are measured on plain text (and big tables stay fast).
pub fn render_with_status(headers: &[&str], rows: &[Vec<String>], colour: bool) -> String {
    let plain = render(headers, rows);
    let Some(column) = headers
        .iter()
        .position(|h| *h == "STATUS")
        .filter(|_| colour)
    else {
        return plain;
    };
    let mut lines = plain.lines();
    let header = lines.next().unwrap_or_default();
    let start = header.find("STATUS").unwrap_or(0);
    let mut out = vec![header.to_string()];
    for (line, row) in lines.zip(rows) {
        let word = &row[column];
        match (line.get(start..start + word.len()), word.parse::<Status>()) {
            (Some(found), Ok(status)) if found == word => out.push(format!(
                "{}{}{}",
                &line[..start],
                status_text(status, true),
                &line[start + word.len()..]
            )),
            _ => out.push(line.to_string()),
        }
    }
    out.join("\n")
}

/// Whether to colour what goes to stdout.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A status, coloured by what it means when `colour` is on.
pub fn status_text(status: Status, colour: bool) -> String {
    if !colour {
        return status.to_string();
    }
    let styled = console::style(status.to_string());
    let styled = match status {
        Status::Completed => styled.green(),
        Status::Running => styled.cyan(),
        Status::Queued | Status::Paused => styled.yellow(),
        Status::Timeboxed => styled.blue(),
        Status::Failed | Status::Lost | Status::Rejected => styled.red(),
        Status::Stopped => styled.magenta(),
        // Faded: a search's loser, not a problem.
        Status::Pruned => styled.dim(),
    };
    styled.force_styling(true).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let text = render(
            &["ID", "STATUS"],
            &[vec!["a-long-id".into(), "running".into()]],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("STATUS"), lines[1].find("running"));
        assert!(lines[1].starts_with("a-long-id"));
    }

    #[test]
    fn the_status_column_is_coloured_in_place() {
        let rows = vec![vec!["a".to_string(), "failed".to_string(), "x".to_string()]];
        let text = render_with_status(&["ID", "STATUS", "NOTE"], &rows, true);
        assert!(text.contains("\u{1b}["), "{text}");
        let plain = render_with_status(&["ID", "STATUS", "NOTE"], &rows, false);
        assert_eq!(console::strip_ansi_codes(&text), plain);
    }

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(status_text(Status::Failed, false), "failed");
        assert!(status_text(Status::Failed, true).contains("\u{1b}["));
    }
}
