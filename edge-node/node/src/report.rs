//! Plain-text tables for terminal reports.

use edge_core::stats::Percentiles;

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn percentile_row(&mut self, name: &str, p: &Percentiles, extra: &[String]) {
        let mut cells = vec![name.to_string(), ms(p.p50), ms(p.p95), ms(p.p99)];
        cells.extend_from_slice(extra);
        self.row(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.header.len();
        let width = |c: usize| {
            std::iter::once(&self.header)
                .chain(&self.rows)
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        let line = |r: &Vec<String>| {
            (0..cols)
                .map(|c| {
                    let cell = r.get(c).map(String::as_str).unwrap_or("");
                    if c == 0 {
                        format!("{cell:<w$}", w = widths[c])
                    } else {
                        format!("{cell:>w$}", w = widths[c])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        let mut out = line(&self.header);
        out.push('\n');
        out.push_str(
            &widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  "),
        );
        for r in &self.rows {
            out.push('\n');
            out.push_str(&line(r));
        }
        out
    }
}

pub fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["stage", "p50"]);
        t.row(vec!["compose".into(), "1.00 ms".into()]);
        t.row(vec!["send".into(), "0.05 ms".into()]);
        assert_eq!(
            t.render(),
            "stage        p50\n-------  -------\ncompose  1.00 ms\nsend     0.05 ms"
        );
    }
}
