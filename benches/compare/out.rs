//! The harness's machine-readable output: one CSV file per section, for
//! `tools/charts` and for anyone comparing runs.
//!
//! Values are plain numbers (no thousands separators, `NaN` when not measured); text
//! fields never contain commas.

use std::path::PathBuf;

/// Where the CSV files go: `--out DIR`, or `target/compare` under the package.
pub struct Csv {
    dir: PathBuf,
}

impl Csv {
    pub fn new(dir: Option<&str>) -> Self {
        let dir = dir.map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/compare"),
            PathBuf::from,
        );
        Csv { dir }
    }

    /// Writes `<dir>/<name>.csv`, replacing the file of an earlier run; a failure to
    /// write is reported and does not end the run.
    pub fn write(&self, name: &str, header: &[&str], rows: &[String]) {
        let mut text = header.join(",");
        text.push('\n');
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        let path = self.dir.join(format!("{name}.csv"));
        match std::fs::create_dir_all(&self.dir).and_then(|()| std::fs::write(&path, text)) {
            Ok(()) => println!("(wrote {})", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
}
