//! Where results go: CSV files, PNG plots and a markdown section per
//! experiment and place, and `summary.md`, rebuilt from every section found.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Result;

/// The experiments in the order the paper presents them; sections are
/// gathered into `summary.md` in this order.
pub const EXPERIMENTS: [&str; 6] = ["table1", "fig4", "fig5", "fig6", "fig7", "path"];

/// The output folder of one invocation, and the tag its files carry.
#[derive(Debug)]
pub struct Results {
    dir: PathBuf,
    tag: String,
}

/// Checks a `--tag`: it becomes part of file names.
pub fn parse_tag(text: &str) -> Result<String> {
    let valid = !text.is_empty()
        && text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "tag {text:?} is not usable in file names: use 1 to 32 lowercase letters, digits or dashes (e.g. host, vm)"
        ))
    }
}

impl Results {
    /// Creates the folder if needed.
    pub fn open(dir: &Path, tag: &str) -> Result<Results> {
        fs::create_dir_all(dir)
            .map_err(|err| format!("cannot create the output folder {}: {err}", dir.display()))?;
        Ok(Results {
            dir: dir.to_owned(),
            tag: tag.to_owned(),
        })
    }

    /// The tag of this invocation.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `DIR/EXPERIMENT-TAG[-DETAIL].EXT`.
    pub fn path(&self, experiment: &str, detail: Option<&str>, ext: &str) -> PathBuf {
        let stem = match detail {
            Some(detail) => format!("{experiment}-{}-{detail}", self.tag),
            None => format!("{experiment}-{}", self.tag),
        };
        self.dir.join(format!("{stem}.{ext}"))
    }

    /// The file name alone of [`Results::path`], for links from the markdown.
    pub fn file_name(&self, experiment: &str, detail: Option<&str>, ext: &str) -> String {
        self.path(experiment, detail, ext)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Writes `rows` as CSV with a header row named after their fields.
    pub fn write_csv<T: Serialize>(
        &self,
        experiment: &str,
        detail: Option<&str>,
        rows: &[T],
    ) -> Result<PathBuf> {
        let path = self.path(experiment, detail, "csv");
        write_csv(&path, rows)?;
        Ok(path)
    }

    /// Writes the experiment's markdown section for this tag.
    pub fn write_section(&self, experiment: &str, markdown: &str) -> Result<PathBuf> {
        let path = self.path(experiment, None, "md");
        fs::write(&path, markdown)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        Ok(path)
    }

    /// Rebuilds `summary.md` from every section in the folder, in the
    /// paper's order, so that runs in different places (host, VM) and at
    /// different times add up to one summary.
    pub fn write_summary(&self) -> Result<PathBuf> {
        let mut sections = Vec::new();
        let entries = fs::read_dir(&self.dir)
            .map_err(|err| format!("cannot list {}: {err}", self.dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".md") else {
                continue;
            };
            let Some(rank) = EXPERIMENTS
                .iter()
                .position(|experiment| stem.starts_with(&format!("{experiment}-")))
            else {
                continue;
            };
            sections.push((rank, stem.to_owned(), entry.path()));
        }
        sections.sort();
        let mut summary = String::from(
            "# qsock evaluation: headline figures\n\n\
             Written by `qsock-eval` from the sections in this folder; see EVALUATION.md \
             at the repository's root for what each experiment does.\n",
        );
        for (_, _, path) in sections {
            let text = fs::read_to_string(&path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            summary.push('\n');
            summary.push_str(text.trim_end());
            summary.push('\n');
        }
        let path = self.dir.join("summary.md");
        fs::write(&path, summary)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        Ok(path)
    }
}

/// Writes `rows` to `path` as CSV with a header row.
pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let failed = |err: csv::Error| format!("cannot write {}: {err}", path.display());
    let mut writer = csv::Writer::from_path(path).map_err(failed)?;
    for row in rows {
        writer.serialize(row).map_err(failed)?;
    }
    writer
        .flush()
        .map_err(|err| format!("cannot write {}: {err}", path.display()))
}

/// A markdown table: a header row, the alignment row and the rows.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = format!("| {} |\n", header.join(" | "));
    let alignment: Vec<&str> = header
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { "---" } else { "---:" })
        .collect();
    table.push_str(&format!("|{}|\n", alignment.join("|")));
    for row in rows {
        table.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        scheduler: &'static str,
        interval_s: u32,
        late: u64,
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_row() {
        let dir = tempfile::tempdir().unwrap();
        let results = Results::open(dir.path(), "host").unwrap();
        let rows = [
            Row {
                scheduler: "htb",
                interval_s: 0,
                late: 3,
            },
            Row {
                scheduler: "user",
                interval_s: 5,
                late: 0,
            },
        ];
        let path = results.write_csv("fig7", None, &rows).unwrap();
        assert_eq!(path, dir.path().join("fig7-host.csv"));
        let text = fs::read_to_string(path).unwrap();
        assert_eq!(text, "scheduler,interval_s,late\nhtb,0,3\nuser,5,0\n");
    }

    #[test]
    fn summary_orders_sections_as_the_paper_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let vm = Results::open(dir.path(), "vm").unwrap();
        let host = Results::open(dir.path(), "host").unwrap();
        vm.write_section("fig7", "## fig7 vm").unwrap();
        host.write_section("fig7", "## fig7 host").unwrap();
        host.write_section("table1", "## table1 host").unwrap();
        fs::write(dir.path().join("notes.md"), "not a section").unwrap();
        let summary = fs::read_to_string(host.write_summary().unwrap()).unwrap();
        let table1 = summary.find("## table1 host").unwrap();
        let fig7_host = summary.find("## fig7 host").unwrap();
        let fig7_vm = summary.find("## fig7 vm").unwrap();
        assert!(table1 < fig7_host && fig7_host < fig7_vm, "{summary}");
        assert!(!summary.contains("not a section"));
    }

    #[test]
    fn tags_must_be_usable_in_file_names() {
        assert_eq!(parse_tag("vm"), Ok("vm".to_owned()));
        let err = parse_tag("../x").unwrap_err();
        assert!(err.contains("lowercase letters"), "{err}");
        assert!(parse_tag("").is_err());
    }

    #[test]
    fn markdown_tables_align_numbers_right() {
        let table = markdown_table(&["call", "ratio"], &[vec!["qsendto".into(), "1.05".into()]]);
        assert_eq!(table, "| call | ratio |\n|---|---:|\n| qsendto | 1.05 |\n");
    }
}
